"""/v1/lineage: what a run or a model version was made from; rerunning a job from it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from trainyard.api import views
from trainyard.api.auth import CurrentUser
from trainyard.api.platform import Platform, get_platform
from trainyard.api.schemas import JobDetail
from trainyard.control import models, reruns
from trainyard.tracking import lineage

router = APIRouter(tags=["lineage"])


@router.get("/v1/lineage/runs/{run_id}")
def run_lineage(run_id: str, who: CurrentUser, platform: Platform = Depends(get_platform)) -> dict[str, Any]:
    """A job's run: code digest (+ git), dataset snapshot, hyperparameters, resolved spec, Python and
    package versions, the checkpoint each attempt started from, the checkpoints it produced. A dataset
    the caller may not read is shown as its reference alone (`available: false`)."""
    with platform.store.session() as s:
        return lineage.run_lineage(s, who, run_id)


@router.get("/v1/lineage/models/{name}/versions/{which}")
def version_lineage(name: str, which: str, who: CurrentUser,
                    platform: Platform = Depends(get_platform)) -> dict[str, Any]:
    """A model version (number or alias) and the chain behind it: checkpoint, run, data, code. A run
    the caller may not read is shown as its id alone (`available: false`)."""
    with platform.store.session() as s:
        return models.version_lineage(s, who, name, which)


@router.post("/v1/training-jobs/{job_id}/rerun", status_code=201, response_model=JobDetail)
def rerun_job(job_id: str, who: CurrentUser, platform: Platform = Depends(get_platform)) -> JobDetail:
    """Submit the same job again from its recorded inputs: resolved spec, code archive, dataset."""
    job = reruns.rerun(platform.store, platform.loop, platform.blobs, job_id, who)
    return views.job_detail(platform, job.id)
