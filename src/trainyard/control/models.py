"""What people do to models that reaches past the registry: declaring one, and reading the chain
behind a version. The api's routes call these.

A model's evaluation runs as a job of the model's team, so its declaration is refused as
that job's submission would be: when the evaluation's code archive was never uploaded, or
its dataset is not a snapshot of the model's team. Refused now, not at the first evaluation.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from trainyard.data import snapshots
from trainyard.principal import Principal
from trainyard.registry import models
from trainyard.registry.spec import ModelSpec
from trainyard.spec import SpecError
from trainyard.storage import BlobStore, require_archive
from trainyard.store import Store
from trainyard.store.registry_tables import Model
from trainyard.tracking import lineage


def declare(store: Store, blobs: BlobStore, spec: ModelSpec, code: dict[str, Any] | None,
            who: Principal) -> Model:
    """Create the model, or change its description and evaluation (applies to later evaluations)."""
    if spec.evaluation:
        require_archive(blobs, (code or {}).get("digest"))
    with store.session() as s:
        if spec.evaluation:
            team = models.owner(s, who, spec)
            try:
                snapshots.resolve_for_job(s, spec.evaluation.dataset, team, who)
            except SpecError as exc:  # the fields are the evaluation's
                raise SpecError([{**e, "field": f"evaluation.{e['field']}"} for e in exc.errors]) from None
        model, _ = models.declare(s, who, spec, code)
    return model


def version_lineage(s: Session, who: Principal, name: str, which: str) -> dict[str, Any]:
    """A version (number or alias) of a model `who` may read (else reported missing) and the chain
    behind it: checkpoint, evaluation, and its run's lineage as far as `who` may read that run."""
    row = models.readable_version(s, who, name, which)
    return {
        "model": name, "version": row.version, "ref": f"{name}@v{row.version}",
        "aliases": sorted(a for a, v in models.aliases_of(s, name).items() if v == row.version),
        "checkpoint": {"step": row.checkpoint_step, "uri": row.checkpoint_uri, "metrics": row.checkpoint_metrics},
        "evaluation": {"state": row.eval_state, "job_id": row.eval_job_id, "metrics": row.eval_metrics,
                       "reason": row.eval_reason},
        "run": lineage.linked_run(s, who, row.run_id),
    }
