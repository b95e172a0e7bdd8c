"""Lineage: what a run was made from and what it made.

Recorded at a job's first launch (`record_launch`): the dataset snapshot and
its digest, and the Python and package versions of the interpreter its ranks
run on. The rest is already in the store: the code archive digest with its
git commit and dirty flag, the resolved spec and its hyperparameters (the job
row), the checkpoint each attempt started from (attempts) and every checkpoint
it produced (checkpoints, deleted ones included).
"""

from __future__ import annotations

import functools
import importlib.metadata
import platform
import sys
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from trainyard.store import repo
from trainyard.store.registry_tables import DatasetVersion, RunLineage
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


def _dataset(s: Session, row: RunLineage | None, job: Job) -> dict[str, Any] | None:
    ref = row.dataset if row else job.spec.get("dataset")
    if not ref:
        return None
    name, version = ref.rsplit("@v", 1)
    snap = s.scalars(select(DatasetVersion).where(DatasetVersion.dataset == name,
                                                  DatasetVersion.version == int(version))).first()
    return {"ref": ref, "digest": row.dataset_digest if row else (snap.digest if snap else None),
            "files": snap.file_count if snap else None, "bytes": snap.bytes if snap else None}


def run_lineage(s: Session, run_id: str) -> dict[str, Any]:
    """Everything a job's run was made from and made, as one document."""
    job = repo.get_job(s, run_id)
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
        "name": job.name,
        "project": job.project,
        "state": job.state,
        "code": {"digest": job.code_digest, "git_commit": job.code_git_commit, "git_dirty": job.code_git_dirty},
        "dataset": _dataset(s, row, job),
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
