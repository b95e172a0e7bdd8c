"""/v1/lineage: what a run or a model version was made from; rerunning a job from it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from trainyard.api import views
from trainyard.api.auth import CurrentUser
from trainyard.api.platform import Platform, get_platform
from trainyard.api.schemas import JobDetail
from trainyard.control import reruns
from trainyard.registry import models
from trainyard.tracking import lineage

router = APIRouter(tags=["lineage"])


@router.get("/v1/lineage/runs/{run_id}")
def run_lineage(run_id: str, platform: Platform = Depends(get_platform)) -> dict[str, Any]:
    """A job's run: code digest (+ git), dataset snapshot, hyperparameters, resolved spec, Python and
    package versions, the checkpoint each attempt started from, the checkpoints it produced."""
    with platform.store.session() as s:
        return lineage.run_lineage(s, run_id)


@router.get("/v1/lineage/models/{name}/versions/{which}")
def version_lineage(name: str, which: str, platform: Platform = Depends(get_platform)) -> dict[str, Any]:
    """A model version (number or alias) and the chain behind it: checkpoint, run, data, code."""
    with platform.store.session() as s:
        row = models.resolve(s, name, which)
        return {
            "model": name, "version": row.version, "ref": f"{name}@v{row.version}",
            "aliases": sorted(a for a, v in models.aliases_of(s, name).items() if v == row.version),
            "checkpoint": {"step": row.checkpoint_step, "uri": row.checkpoint_uri,
                           "metrics": row.checkpoint_metrics},
            "evaluation": {"state": row.eval_state, "job_id": row.eval_job_id, "metrics": row.eval_metrics,
                           "reason": row.eval_reason},
            "run": lineage.run_lineage(s, row.run_id),
        }


@router.post("/v1/training-jobs/{job_id}/rerun", status_code=201, response_model=JobDetail)
def rerun_job(job_id: str, who: CurrentUser, platform: Platform = Depends(get_platform)) -> JobDetail:
    """Submit the same job again from its recorded inputs: resolved spec, code archive, dataset."""
    job = reruns.rerun(platform.store, platform.loop, platform.blobs, job_id, who)
    return views.job_detail(platform, job.id)
