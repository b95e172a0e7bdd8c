"""What people do to jobs: submit and cancel. The api's routes call these."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from trainyard.control import admission
from trainyard.control.loop import ControlLoop
from trainyard.principal import Principal
from trainyard.spec import JobSpec, JobState
from trainyard.storage import BlobStore
from trainyard.store import Store, access, repo
from trainyard.store.tables import Job


def submit(store: Store, loop: ControlLoop, blobs: BlobStore, spec: JobSpec,
           code: dict[str, Any] | None, who: Principal) -> Job:
    with store.session() as s:
        job = admission.admit(s, blobs, loop.backend.capacity(), spec, code, who)
    loop.nudge()
    return job


def readable(s: Session, who: Principal, job_id: str) -> Job:
    """The job, if `who` may see it (its team's roles, or its own ranks); else reported missing."""
    job = repo.get_job(s, job_id)
    access.require_read(who, job.team, repo.missing_job(job_id), job_id=job.id)
    return job


def writable(s: Session, who: Principal, job_id: str, action: str = "cancel it") -> Job:
    job = repo.get_job(s, job_id)
    access.require_role(who, job.team, repo.missing_job(job_id), action=action, job_id=job.id)
    return job


def cancel(store: Store, loop: ControlLoop, job_id: str, who: Principal, reason: str | None = None) -> Job:
    """Queued jobs end at once; running ones are stopped by the control loop (SIGTERM, grace, SIGKILL).

    `reason` says who asked and why (e.g. a sweep pruning its trial); default: a person's request.
    """
    with store.session() as s:
        job = writable(s, who, job_id)
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
