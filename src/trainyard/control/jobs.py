"""What people do to jobs: submit and cancel. The api's routes call these."""

from __future__ import annotations

from typing import Any

from trainyard.backends import Capacity
from trainyard.control import teams
from trainyard.control.loop import ControlLoop
from trainyard.data import snapshots
from trainyard.spec import JobSpec, JobState, SpecError
from trainyard.storage import BlobStore, require_archive
from trainyard.store import Store, repo
from trainyard.store.tables import Job


def check_fits(spec: JobSpec, capacity: Capacity) -> None:
    """Refuse a job that could never run here, rather than queue it forever."""
    r = spec.resources
    errors = []
    if r.total_gpus > capacity.gpus:
        errors.append({"field": "resources.gpus_per_worker", "message":
                       f"the job asks for {r.total_gpus} GPUs in all ({r.workers} workers × "
                       f"{r.gpus_per_worker}) but this cluster has {capacity.gpus}; lower "
                       "gpus_per_worker or workers"})
    if r.total_cpus > capacity.cpus:
        errors.append({"field": "resources.cpus_per_worker", "message":
                       f"the job asks for {r.total_cpus:g} CPUs in all but this cluster has "
                       f"{capacity.cpus:g}; lower cpus_per_worker or workers"})
    if r.total_memory_gb > capacity.memory_gb:
        errors.append({"field": "resources.memory_gb", "message":
                       f"the job asks for {r.total_memory_gb:g} GiB in all but this cluster has "
                       f"{capacity.memory_gb:.0f}; lower memory_gb or workers"})
    if errors:
        raise SpecError(errors)


def submit(store: Store, loop: ControlLoop, blobs: BlobStore, spec: JobSpec,
           code: dict[str, Any] | None) -> Job:
    check_fits(spec, loop.backend.capacity())
    code = code or {}
    require_archive(blobs, code.get("digest"))
    with store.session() as s:
        classes = teams.priority_classes(s)
        if spec.priority not in classes:
            raise SpecError([{"field": "priority", "message": f"unknown priority class {spec.priority!r}; "
                              f"use one of {', '.join(classes)}"}])
        if spec.dataset:  # a snapshot of another project, or none: refused now, not at launch
            snapshots.resolve_for_job(s, spec.dataset, spec.project)
        job = repo.create_job(s, spec, code, priority=classes[spec.priority])
    loop.nudge()
    return job


def cancel(store: Store, loop: ControlLoop, job_id: str, reason: str | None = None) -> Job:
    """Queued jobs end at once; running ones are stopped by the control loop (SIGTERM, grace, SIGKILL).

    `reason` says who asked and why (e.g. a sweep pruning its trial); default: a person's request.
    """
    with store.session() as s:
        job = repo.get_job(s, job_id)
        if JobState(job.state).terminal:
            return job
        job.cancel_requested = True
        job.cancel_reason = reason
        if job.state == JobState.QUEUED:
            repo.set_state(s, job, JobState.CANCELLED, "cancelled",
                           f"{reason} while queued" if reason else "cancelled by request while queued")
        else:
            why = reason or "cancel requested"
            repo.add_event(s, job.id, "cancel_requested", f"{why}; stopping the gang")
    loop.nudge()
    return job
