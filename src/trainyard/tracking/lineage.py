"""Lineage: what a run was made from and what it made.

Recorded at a job's first launch (`record_launch`): the dataset snapshot and
its digest, and the Python and package versions of the interpreter its ranks
run on. The rest is already in the store: the code archive digest with its
git commit and dirty flag, the resolved spec and its hyperparameters (the job
row), the checkpoint each attempt started from (attempts) and every checkpoint
it produced (checkpoints, deleted ones included).

Reading a run's lineage takes reading the run (a role in its job's team, or being one of its
ranks); another team's run reads as missing. What the lineage points at is shown only as far
as the caller may read it: a dataset of a team the caller may not read (a job made before
datasets belonged to teams may name one) is shown as its reference alone, `available: false`,
exactly as one that is gone, and a model version's run as its id alone.
"""

from __future__ import annotations

import functools
import importlib.metadata
import platform
import sys
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from trainyard.principal import Principal
from trainyard.store import access, repo
from trainyard.store.registry_tables import Dataset, DatasetVersion, RunLineage
from trainyard.store.tables import Attempt, Checkpoint, Job, utcnow

RERUN_LABEL = "rerun_of"


@functools.lru_cache(maxsize=1)
def environment() -> tuple[str, str, dict[str, str]]:
    """(python version, platform, {distribution: version}) of this interpreter. The local backend
    runs "python" entrypoints on this same interpreter, so it is the ranks' environment too."""
    packages: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            packages[name.lower()] = dist.version
    return platform.python_version(), f"{platform.platform()} ({sys.implementation.name})", dict(
        sorted(packages.items()))


def record_launch(s: Session, job: Job, dataset: DatasetVersion | None) -> None:
    """Note what the job's ranks get, once: at its first launch."""
    if s.get(RunLineage, job.id) is not None:
        return
    python, plat, packages = environment()
    s.add(RunLineage(run_id=job.id, dataset=f"{dataset.dataset}@v{dataset.version}" if dataset else None,
                     dataset_digest=dataset.digest if dataset else None, python=python, platform=plat,
                     packages=packages, rerun_of=(job.spec.get("labels") or {}).get(RERUN_LABEL),
                     recorded_at=utcnow()))


def _dataset(s: Session, who: Principal, row: RunLineage | None, job: Job) -> dict[str, Any] | None:
    ref = row.dataset if row else job.spec.get("dataset")
    if not ref:
        return None
    name, version = ref.rsplit("@v", 1)
    team = s.scalar(select(Dataset.team).where(Dataset.name == name))
    snap = s.scalars(select(DatasetVersion).where(DatasetVersion.dataset == name,
                                                  DatasetVersion.version == int(version))).first()
    if team is None or snap is None or not access.may_read(who, team):  # hidden or gone: the same
        return {"ref": ref, "available": False, "digest": None, "files": None, "bytes": None}
    return {"ref": ref, "available": True, "digest": row.dataset_digest if row else snap.digest,
            "files": snap.file_count, "bytes": snap.bytes}


def readable_job(s: Session, who: Principal, run_id: str) -> Job:
    """The job of a run `who` may read; else reported missing (lineage is recorded for jobs' runs)."""
    job = repo.get_job(s, run_id)
    access.require_read(who, job.team, repo.missing_job(run_id), job_id=job.id)
    return job


def linked_run(s: Session, who: Principal, run_id: str) -> dict[str, Any]:
    """The lineage of a run something else points at (a model version's): in full if `who` may read
    it, else its id alone, `available: false`."""
    job = s.get(Job, run_id)
    if job is None or not access.may_read(who, job.team, job.id):
        return {"run": run_id, "available": False}
    return _lineage(s, who, job)


def run_lineage(s: Session, who: Principal, run_id: str) -> dict[str, Any]:
    """Everything a job's run was made from and made, as one document; of a run `who` may read."""
    return _lineage(s, who, readable_job(s, who, run_id))


def _lineage(s: Session, who: Principal, job: Job) -> dict[str, Any]:
    run_id = job.id
    row = s.get(RunLineage, run_id)
    attempts = s.scalars(select(Attempt).where(Attempt.job_id == run_id).order_by(Attempt.number)).all()
    produced = s.scalars(select(Checkpoint).where(Checkpoint.job_id == run_id).order_by(Checkpoint.step)).all()
    by_step = {c.step: c for c in produced}
    started = []
    for a in attempts:
        ckpt = by_step.get(a.restore_step) if a.restore_step is not None else None
        started.append({"attempt": a.number, "step": a.restore_step, "uri": ckpt.uri if ckpt else None})
    return {
        "run": job.id,
        "available": True,
        "team": job.team,
        "name": job.name,
        "project": job.project,
        "state": job.state,
        "code": {"digest": job.code_digest, "git_commit": job.code_git_commit, "git_dirty": job.code_git_dirty},
        "dataset": _dataset(s, who, row, job),
        "hyperparameters": job.spec.get("hyperparameters") or {},
        "spec": job.spec,
        "environment": ({"python": row.python, "platform": row.platform, "packages": row.packages}
                        if row else None),
        "started_from": started,
        "checkpoints": [{"step": c.step, "attempt": c.attempt, "uri": c.uri, "state": c.state,
                         "metrics": c.metrics} for c in produced],
        "rerun_of": row.rerun_of if row else (job.spec.get("labels") or {}).get(RERUN_LABEL),
        "final_metrics": {k: v["value"] for k, v in repo.last_metrics(s, run_id).items()
                          if not k.startswith("system/")},
    }
