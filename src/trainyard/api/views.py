"""Rows of the store shaped into the api's response bodies."""

from __future__ import annotations

from pathlib import Path

from fastapi import Response

from trainyard.api.platform import Platform
from trainyard.api.schemas import CheckpointView, EventView, JobDetail, JobSummary, WorkerView
from trainyard.auth import secrets
from trainyard.backends.redaction import Redactor
from trainyard.spec import AttemptState, CheckpointState, JobSpec, JobState
from trainyard.store import repo
from trainyard.store.tables import Checkpoint, Event, Job
from trainyard.tracking import history

LOG_CHUNK_BYTES = 256 * 1024


def job_summary(job: Job) -> JobSummary:
    return JobSummary(
        id=job.id, name=job.name, team=job.team, project=job.project, experiment=job.experiment,
        state=job.state, reason=job.reason, attempt=job.attempt, restarts=job.restarts,
        max_restarts=job.spec.get("max_restarts", 0), step=job.step, priority=job.spec.get("priority", "normal"),
        created_at=job.created_at, started_at=job.started_at, finished_at=job.finished_at,
    )


def checkpoint_view(c: Checkpoint) -> CheckpointView:
    return CheckpointView(step=c.step, attempt=c.attempt, uri=c.uri, bytes=c.bytes,
                          verified=c.state == CheckpointState.COMMITTED, state=c.state, metrics=c.metrics,
                          manifest=c.manifest, created_at=c.created_at)


def event_view(e: Event) -> EventView:
    return EventView(time=e.time, kind=e.kind, reason=e.reason)


def job_detail(platform: Platform, job_id: str) -> JobDetail:
    with platform.store.session() as s:
        job = repo.get_job(s, job_id)
        workers = [
            WorkerView(rank=w.rank, host=w.host, pid=w.pid, state=w.state, step=w.step,
                       exit_code=w.exit_code, last_heartbeat=w.last_heartbeat)
            for w in repo.workers_of(s, job.id, job.attempt)
        ]
        return JobDetail(
            **job_summary(job).model_dump(),
            spec=job.spec,
            code={"digest": job.code_digest, "git_commit": job.code_git_commit,
                  "git_dirty": job.code_git_dirty},
            workers=workers,
            checkpoints=[checkpoint_view(c) for c in repo.committed_checkpoints(s, job.id)],
            metrics=repo.last_metrics(s, job.id),
        )


def metric_history(platform: Platform, run_id: str, key: str, max_points: int | None,
                   shape: history.Shape) -> Response:
    """A run's (or its job's: same id) history of `key`, encoded once by tracking.history, not by FastAPI."""
    with platform.store.session() as s:
        body = history.of_run(s, run_id, key, max_points, shape)
    return Response(body, media_type="application/json")


def log_chunk(platform: Platform, job_id: str, rank: int, attempt: int | None, offset: int) -> dict:
    """Up to 256 KiB of one rank's log from `offset`; `done` once that attempt can write no more.

    The rank wrapper wrote the log with the job's secrets already replaced; they are replaced here
    again, by their current values, in case a log came from elsewhere (`offset` counts stored bytes)."""
    with platform.store.session() as s:
        job = repo.get_job(s, job_id)
        number = attempt or job.attempt
        att = repo.attempt_row(s, job_id, number) if number else None
        finished = att is None or not AttemptState(att.state).owns_job or JobState(job.state).terminal
        refs = JobSpec.model_validate(job.spec).secret_env
        redactor = Redactor(secrets.job_values(s, secrets.keyring(platform.config), job.team, refs))
    path = Path(platform.config.logs) / job_id / f"attempt-{number}" / f"rank-{rank}.log"
    text = ""
    if path.exists() and offset < path.stat().st_size:  # seeking far past the end is an OSError
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(LOG_CHUNK_BYTES)
        text = redactor.redact(data).decode("utf-8", errors="replace")
        offset += len(data)
    return {"text": text, "offset": offset, "attempt": number, "done": finished}
