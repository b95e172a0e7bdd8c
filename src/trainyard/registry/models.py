"""Models and their numbered versions, each made from one committed checkpoint of a job's run.

A version carries its run's lineage (the run id leads to code, data, params)
and the checkpoint it points to (retention keeps it). A model that declares an
evaluation starts each new version PENDING; the evaluation driver runs it.

A model belongs to one team: its viewers read it (versions, aliases, events), its
members change it (declare, describe, register, tag, evaluate, move aliases), and
its evaluations run as its jobs. Another team's model reads as missing; only
declaring a name another team holds says the name is taken (409), since names are
unique on the server. A version is made only from a run the caller may read.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from trainyard.principal import Principal, Role
from trainyard.registry.spec import ModelSpec
from trainyard.spec import INT64_MAX, NAME_PATTERN, JobSpec, SpecError, version_number
from trainyard.store import access, repo
from trainyard.store.registry_tables import Model, ModelAlias, ModelEvent, ModelVersion
from trainyard.store.repo import Conflict, NotFound
from trainyard.store.tables import Checkpoint, Job, utcnow

VERSION_REF = re.compile(r"^(?P<name>[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?)@(?P<which>[a-z0-9._-]+)$")
MAX_TAGS = 100


class RegistryError(SpecError):
    """A registry request that cannot be done as asked: a 422 naming `field` and what to do."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__([{"field": field, "message": message}])


def add_event(s: Session, model: str, kind: str, reason: str, actor: str, version: int | None = None,
              alias: str | None = None, from_version: int | None = None, to_version: int | None = None) -> None:
    s.add(ModelEvent(model=model, version=version, kind=kind, reason=reason, actor=actor, alias=alias,
                     from_version=from_version, to_version=to_version, time=utcnow()))


def missing_model(name: str) -> str:
    """What a caller hears of a model that does not exist, or that it may not see: the same words."""
    return f"no model {name!r}; declare one with `yard models create model.yaml`"


def get_model(s: Session, name: str, lock: bool = False) -> Model:
    model = s.get(Model, name, with_for_update=lock)
    if model is None:
        raise NotFound(missing_model(name))
    return model


def readable(s: Session, who: Principal, name: str) -> Model:
    """The model, if `who` may read it (a viewer of its team or more); else reported missing."""
    model = get_model(s, name)
    access.require_read(who, model.team, missing_model(name))
    return model


def writable(s: Session, who: Principal, name: str, action: str, lock: bool = False) -> Model:
    """The model, if `who` may change it (a member of its team or more): 404 if unseen, else 403."""
    model = get_model(s, name, lock=lock)
    access.require_role(who, model.team, missing_model(name), Role.MEMBER, action)
    return model


def list_models(s: Session, who: Principal, project: str | None = None) -> list[Model]:
    """The models of the teams `who` may read, by name."""
    stmt = select(Model).where(access.visible(who, Model.team)).order_by(Model.name)
    if project:
        stmt = stmt.where(Model.project == project)
    return list(s.scalars(stmt))


def owner(s: Session, who: Principal, spec: ModelSpec) -> str:
    """The team of the model `spec` declares, which `who` must be a member of: an existing model's
    own (its name is taken (409) if `who` may not see it), else the one named or `who`'s default."""
    model = s.get(Model, spec.name)
    if model is None:
        team = access.team_for_new(who, spec.team, "models")
    elif not access.may_read(who, model.team):
        raise Conflict(f"model name {spec.name!r} is taken; choose another")
    else:
        if spec.team is not None and spec.team != model.team:
            raise RegistryError("team", f"model {spec.name} belongs to team {model.team}; a model cannot "
                                        "move between teams")
        access.require_role(who, model.team, missing_model(spec.name), Role.MEMBER, "change it")
        team = model.team
    if spec.evaluation and spec.evaluation.team not in (None, team):
        raise RegistryError("evaluation.team", f"a model's evaluation runs in the model's own team, "
                                               f"{team}; remove evaluation.team or set it to {team}")
    return team


def declare(s: Session, who: Principal, spec: ModelSpec, code: dict[str, Any] | None) -> tuple[Model, bool]:
    """Create the model, or change its description and evaluation; (model, created)."""
    team = owner(s, who, spec)
    model = s.get(Model, spec.name)
    evaluation = spec.evaluation.model_dump(mode="json") if spec.evaluation else None
    code = code or {}
    actor = who.name
    if model is None:
        model = Model(name=spec.name, team=team, project=spec.project, description=spec.description,
                      evaluation=evaluation, code_digest=code.get("digest"),
                      code_git_commit=code.get("git_commit"), code_git_dirty=code.get("git_dirty"),
                      created_at=utcnow(), created_by=actor)
        s.add(model)
        s.flush()
        gate = (f"evaluation {spec.evaluation.entrypoint} on {spec.evaluation.dataset}, rule "
                f"{spec.evaluation.rule!r} gating {', '.join(spec.evaluation.gates)}") if spec.evaluation \
            else "no evaluation declared (no alias is gated)"
        add_event(s, model.name, "created", f"model created in team {team}, project {spec.project}; {gate}",
                  actor)
        return model, True
    if model.project != spec.project:
        raise RegistryError("project", f"model {spec.name} belongs to project {model.project}; "
                                       "a model cannot move between projects")
    changes = []
    if spec.description != model.description:
        model.description = spec.description
        changes.append("description")
    if evaluation != model.evaluation or code.get("digest") != model.code_digest:
        model.evaluation = evaluation
        model.code_digest = code.get("digest")
        model.code_git_commit, model.code_git_dirty = code.get("git_commit"), code.get("git_dirty")
        changes.append("evaluation")
    if changes:
        add_event(s, model.name, "updated", f"{' and '.join(changes)} changed; applies to versions "
                                            "evaluated from now on", actor)
    return model, False


def describe(s: Session, who: Principal, name: str, description: str) -> Model:
    """Change a model's description; the change is an event."""
    model = writable(s, who, name, "describe it")
    if model.description != description:
        model.description = description
        add_event(s, name, "updated", "description changed", who.name)
    return model


def get_version(s: Session, model: str, version: int) -> ModelVersion:
    get_model(s, model)
    row = s.scalars(select(ModelVersion).where(ModelVersion.model == model,
                                               ModelVersion.version == version)).first()
    if row is None:
        raise NotFound(f"model {model} has no version v{version}; see `yard models show {model}`")
    return row


def versions_of(s: Session, model: str) -> list[ModelVersion]:
    return list(s.scalars(select(ModelVersion).where(ModelVersion.model == model)
                          .order_by(ModelVersion.version)))


def aliases_of(s: Session, model: str) -> dict[str, int]:
    rows = s.scalars(select(ModelAlias).where(ModelAlias.model == model).order_by(ModelAlias.alias))
    return {a.alias: a.version for a in rows}


def resolve(s: Session, model: str, which: str) -> ModelVersion:
    """A version by number ("3", "v3") or by alias ("production")."""
    number = version_number(which, "which")
    if number is not None:
        return get_version(s, model, number)
    alias = s.get(ModelAlias, (model, which))
    if alias is None:
        get_model(s, model)
        raise NotFound(f"model {model} has no alias {which!r}; see `yard models show {model}`")
    return get_version(s, model, alias.version)


def readable_version(s: Session, who: Principal, model: str, which: str) -> ModelVersion:
    """`resolve`, of a model `who` may read (else the model is reported missing)."""
    readable(s, who, model)
    return resolve(s, model, which)


def parse_ref(ref: str, field: str = "model") -> tuple[str, str]:
    """NAME@vN or NAME@ALIAS -> (name, "vN" | alias)."""
    m = VERSION_REF.match(ref)
    if not m:
        raise RegistryError(field, f"{ref!r} is not a model version; write NAME@vN or NAME@ALIAS, "
                                   "e.g. digits-classifier@v2 or digits-classifier@production")
    return m.group("name"), m.group("which")


def _pick_checkpoint(s: Session, run_id: str, which: str) -> Checkpoint:
    ckpts = repo.committed_checkpoints(s, run_id)  # newest first
    if not ckpts:
        raise RegistryError("run_id", f"run {run_id} has no committed checkpoint to register")
    if which == "latest":
        return ckpts[0]
    if which == "best":
        keep_best = JobSpec.model_validate(repo.get_job(s, run_id).spec).checkpoint.keep_best
        if keep_best is None:
            raise RegistryError("checkpoint", f"run {run_id}'s checkpoint policy names no keep_best metric, "
                                              "so 'best' means nothing; use 'latest' or a step")
        scored = [c for c in ckpts if keep_best.metric in c.metrics]
        if not scored:
            raise RegistryError("checkpoint", f"no checkpoint of run {run_id} recorded "
                                              f"{keep_best.metric}; use 'latest' or a step")
        pick = max if keep_best.mode == "max" else min
        return pick(scored, key=lambda c: (c.metrics[keep_best.metric], c.step if pick is max else -c.step))
    if re.fullmatch(r"[0-9]+", which):  # ASCII digits: str.isdigit() also takes "³", which int() refuses
        step = int(which)
        if step > INT64_MAX:
            raise RegistryError("checkpoint", f"a step is at most {INT64_MAX}")
        for c in ckpts:
            if c.step == step:
                return c
        steps = ", ".join(str(c.step) for c in ckpts)
        raise RegistryError("checkpoint", f"run {run_id} has no committed checkpoint at step {which}; "
                                          f"committed steps: {steps}")
    raise RegistryError("checkpoint", f"{which!r}: use 'best', 'latest' or a step number")


def check_tags(tags: dict[str, str]) -> dict[str, str]:
    if len(tags) > MAX_TAGS:
        raise RegistryError("tags", f"at most {MAX_TAGS} tags")
    for k, v in tags.items():
        if not k or len(k) > 250 or len(v) > 5000:
            raise RegistryError(f"tags.{k}", "a tag key is 1 to 250 characters, its value at most 5000")
    return tags


def register(s: Session, who: Principal, model_name: str, run_id: str, checkpoint: str, description: str,
             tags: dict[str, str]) -> ModelVersion:
    """A new version from a committed checkpoint of a job's run that `who` may read (a run hidden from
    `who` reads as missing); PENDING evaluation if one is declared. Registrations of one model at once
    are serialised on its row (a locked session), so each gets its own version number."""
    model = writable(s, who, model_name, "register versions of it", lock=True)
    actor = who.name
    job = s.get(Job, run_id)
    if job is None or not access.may_read(who, job.team, job.id):
        raise RegistryError("run_id", f"no job run {run_id!r}; a version is made from a job's checkpoint "
                                      "(list them with `yard jobs`)")
    if job.project != model.project:
        raise RegistryError("run_id", f"run {run_id} belongs to project {job.project}; model {model_name} "
                                      f"to project {model.project}")
    ckpt = _pick_checkpoint(s, run_id, checkpoint)
    number = (s.scalar(select(func.max(ModelVersion.version)).where(ModelVersion.model == model_name))
              or 0) + 1
    gated = model.evaluation is not None
    row = ModelVersion(model=model_name, version=number, run_id=run_id, checkpoint_step=ckpt.step,
                       checkpoint_uri=ckpt.uri, checkpoint_metrics=ckpt.metrics, description=description,
                       tags=check_tags(tags), eval_state="PENDING" if gated else "NONE", eval_metrics={},
                       eval_reason="waiting to start the evaluation job" if gated
                       else "the model declares no evaluation", created_at=utcnow(), created_by=actor)
    s.add(row)
    s.flush()
    shown = ", ".join(f"{k}={v:.4g}" for k, v in sorted(ckpt.metrics.items()))
    add_event(s, model_name, "registered", f"v{number} registered from run {run_id}, checkpoint "
                                           f"{checkpoint} (step {ckpt.step}{'; ' + shown if shown else ''})",
              actor, version=number)
    return row


def update_version(s: Session, who: Principal, model: str, which: str, description: str | None,
                   tags: dict[str, str], remove_tags: list[str]) -> ModelVersion:
    """Change a version's description and tags; the change is an event."""
    writable(s, who, model, "change its versions")
    row = resolve(s, model, which)
    changes = []
    if description is not None and description != row.description:
        row.description = description
        changes.append("description")
    if tags or remove_tags:
        merged = {k: v for k, v in {**row.tags, **check_tags(tags)}.items() if k not in remove_tags}
        if merged != row.tags:
            row.tags = merged
            changes.append("tags " + ", ".join(f"{k}={v}" for k, v in sorted(merged.items())))
    if changes:
        add_event(s, row.model, "updated", f"v{row.version}: {'; '.join(changes)}", who.name,
                  version=row.version)
    return row


def events_of(s: Session, model: str, alias: str | None = None) -> list[ModelEvent]:
    stmt = select(ModelEvent).where(ModelEvent.model == model).order_by(ModelEvent.id)
    if alias:
        stmt = stmt.where(ModelEvent.alias == alias)
    return list(s.scalars(stmt))


def readable_events(s: Session, who: Principal, model: str, alias: str | None = None) -> list[ModelEvent]:
    """`events_of` a model `who` may read (else the model is reported missing)."""
    readable(s, who, model)
    return events_of(s, model, alias)


def check_alias_name(alias: str) -> str:
    if not re.match(NAME_PATTERN, alias) or (alias.startswith("v") and alias[1:].isdigit()):
        raise RegistryError("alias", f"{alias!r} is not an alias name: lowercase letters, digits, '.', '_', "
                                     "'-', and not v<number> (that names a version)")
    return alias
