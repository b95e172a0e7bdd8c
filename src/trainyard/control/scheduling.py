"""The store and the backend as the policy sees them: a ClusterSnapshot of jobs and nodes.

Pure translation, both ways: rows in, `scheduler.model` values out. Which jobs to
hold back while a preemption drains, and how decisions become launches and
stops, stays in the control loop.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from trainyard.scheduler.model import GangRequest, RunningGang
from trainyard.spec import JobSpec, Resources
from trainyard.store.tables import Attempt, Checkpoint, Job


def timestamp(value: datetime | None) -> float | None:
    """Seconds since the epoch of a stored time (UTCDateTime reads back timezone-aware)."""
    return None if value is None else value.timestamp()


def gang_request(job: Job, spec: JobSpec) -> GangRequest:
    r = spec.resources
    return GangRequest(
        id=job.id,
        gpus=r.total_gpus,
        team=job.team,
        priority=spec.priority,
        submit_time=timestamp(job.created_at) or 0.0,
        gpus_per_worker=r.gpus_per_worker,
        cpus=r.total_cpus,
        memory_gb=r.total_memory_gb,
        gpu_type=r.gpu_type,
        allow_spot=spec.allow_spot,
        preemptible=spec.preemptible,
        expected_duration=spec.expected_duration_s,
    )


def running_gang(job: Job, spec: JobSpec, att: Attempt, newest: Checkpoint | None) -> RunningGang:
    return RunningGang(
        job=gang_request(job, spec),
        placement=dict(att.launch.get("placement") or {}),  # the backend's record of where its ranks run
        start_time=timestamp(att.started_at) or 0.0,
        last_checkpoint_time=timestamp(newest.created_at) if newest is not None else None,
        checkpoint_every_s=spec.checkpoint.every_seconds,
        opportunistic=bool(att.launch.get("opportunistic")),
    )


def team_usage(s: Session, now: float, half_life_s: float) -> dict[str, float]:
    """GPUs each team has held on average lately, weighting the recent past most (a half-life
    of `half_life_s`, looking back four of them): the policy's fair-share history."""
    rate = math.log(2) / half_life_s
    horizon = 4 * half_life_s
    since = now - horizon
    cutoff = datetime.fromtimestamp(since, UTC)
    rows = s.execute(
        select(Attempt.job_id, Attempt.started_at, Attempt.ended_at, Job.team, Job.spec)
        .join(Job, Job.id == Attempt.job_id)
        .where(or_(Attempt.ended_at.is_(None), Attempt.ended_at >= cutoff))
    ).all()
    held: dict[str, float] = {}
    gpus_of: dict[str, int] = {}
    for job_id, started, ended, team, spec in rows:
        gpus = gpus_of.get(job_id)
        if gpus is None:
            gpus = gpus_of[job_id] = Resources.model_validate(spec.get("resources") or {}).total_gpus
        a = max(since, timestamp(started) or now)
        b = min(now, timestamp(ended) or now)
        if gpus and b > a:
            held[team] = held.get(team, 0.0) + gpus * (math.exp(-rate * (now - b)) - math.exp(-rate * (now - a))) / rate
    weight = (1.0 - math.exp(-rate * horizon)) / rate
    return {team: g / weight for team, g in held.items()}


