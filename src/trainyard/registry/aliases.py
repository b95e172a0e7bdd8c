"""Aliases: names (staging, production, any) that point at one version, moved with who and why.

A model's evaluation gates some aliases (production by default): a version
takes a gated alias only after passing its evaluation, and its metrics are
checked again against the alias's current holder, the champion. Rollback moves
an alias back to its previous holder, replaying the alias's history: each move
pushes a holder, each rollback pops one. Moving and rolling back take the member
role in the model's team.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from trainyard.principal import Principal
from trainyard.registry import rules
from trainyard.registry.models import (
    RegistryError,
    add_event,
    check_alias_name,
    events_of,
    get_model,
    get_version,
    writable,
)
from trainyard.store import Store
from trainyard.store.registry_tables import Model, ModelAlias, ModelVersion
from trainyard.store.tables import utcnow

MOVED, ROLLED_BACK, REFUSED = "alias_moved", "alias_rolled_back", "alias_refused"


class GateRefused(RegistryError):
    """A gated alias refused a version; the message says why (the refusal is recorded as an event)."""


def gates(model: Model) -> list[str]:
    return list((model.evaluation or {}).get("gates") or []) if model.evaluation else []


def holder(s: Session, model: str, alias: str) -> ModelVersion | None:
    row = s.get(ModelAlias, (model, alias))
    if row is None:
        return None
    return get_version(s, model, row.version)


def champion(s: Session, model: Model) -> ModelVersion | None:
    """The version the rule's `champion.*` means: the holder of the model's first gated alias."""
    gated = gates(model)
    return holder(s, model.name, gated[0]) if gated else None


def check_gate(s: Session, model: Model, row: ModelVersion, alias: str) -> None:
    """GateRefused unless `row` may take `alias`."""
    if alias not in gates(model):
        return
    name = f"{model.name}@v{row.version}"
    if row.eval_state == "FAILED":
        raise GateRefused("version", f"cannot move {alias} to {name}: it failed its evaluation: {row.eval_reason}")
    if row.eval_state in ("PENDING", "RUNNING"):
        job = f" (job {row.eval_job_id})" if row.eval_job_id else ""
        raise GateRefused("version", f"cannot move {alias} to {name}: its evaluation has not finished "
                                     f"({row.eval_state}{job}); wait for it to pass")
    if row.eval_state != "PASSED":
        raise GateRefused("version", f"cannot move {alias} to {name}: it has not been evaluated "
                                     f"({row.eval_reason}); run `yard models evaluate {name}`")
    champ = holder(s, model.name, alias)
    if champ is not None and champ.version != row.version and model.evaluation:
        verdict = rules.evaluate(rules.parse(model.evaluation["rule"]), row.eval_metrics, champ.eval_metrics)
        if not verdict.passed:
            raise GateRefused("version", f"cannot move {alias} to {name}: it passed its evaluation, but not "
                                         f"against {alias}'s current holder v{champ.version}: {verdict.reason}")


def _set(s: Session, model: str, alias: str, version: int, actor: str) -> ModelAlias:
    row = s.get(ModelAlias, (model, alias))
    if row is None:
        row = ModelAlias(model=model, alias=alias, version=version)
        s.add(row)
    row.version, row.updated_at, row.updated_by = version, utcnow(), actor
    return row


def move(s: Session, model_name: str, alias: str, target: ModelVersion, reason: str, actor: str) -> ModelAlias:
    """Point `alias` at `target` if its gate allows; the move is an event with who and why."""
    model = get_model(s, model_name)
    check_alias_name(alias)
    current = s.get(ModelAlias, (model_name, alias))
    if current is not None and current.version == target.version:
        return current
    check_gate(s, model, target, alias)
    before = current.version if current is not None else None
    row = _set(s, model_name, alias, target.version, actor)
    was = f"from v{before}" if before is not None else "(new alias)"
    add_event(s, model_name, MOVED, f"{alias} moved {was} to v{target.version} by {actor}: {reason}", actor,
              version=target.version, alias=alias, from_version=before, to_version=target.version)
    return row


def request_move(store: Store, who: Principal, model_name: str, alias: str, version: int, reason: str) -> None:
    """A person's request to point `alias` at `version`: moved, or GateRefused with the refusal
    recorded as an event, in a transaction of its own since the move's rolls back."""
    actor = who.name
    try:
        with store.session() as s:
            writable(s, who, model_name, "move its aliases")
            move(s, model_name, alias, get_version(s, model_name, version), reason, actor)
    except GateRefused as exc:
        with store.session() as s:
            add_event(s, model_name, REFUSED, f"{exc.errors[0]['message']} (asked by {actor}: {reason})", actor,
                      version=version, alias=alias)
        raise


def holders(s: Session, model: str, alias: str) -> list[int]:
    """The alias's holders as a stack, oldest first: moves push, rollbacks pop."""
    stack: list[int] = []
    for e in events_of(s, model, alias):
        if e.kind == MOVED and e.to_version is not None:
            stack.append(e.to_version)
        elif e.kind == ROLLED_BACK and stack:
            stack.pop()
    return stack


def rollback(s: Session, who: Principal, model_name: str, alias: str, reason: str) -> ModelAlias:
    """Move `alias` back to the version that held it before the current one (no gate: it held it)."""
    writable(s, who, model_name, "roll back its aliases")
    actor = who.name
    stack = holders(s, model_name, alias)
    if len(stack) < 2:
        whom = f"only v{stack[-1]} has held it" if stack else "no version holds it"
        raise RegistryError("alias", f"{alias} of {model_name} has no previous holder to roll back to: {whom}")
    current, previous = stack[-1], stack[-2]
    row = _set(s, model_name, alias, previous, actor)
    add_event(s, model_name, ROLLED_BACK, f"{alias} rolled back from v{current} to v{previous} by {actor}: "
                                          f"{reason}", actor, version=previous, alias=alias,
              from_version=current, to_version=previous)
    return row
