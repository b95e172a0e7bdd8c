"""Request dependencies shared by the routers: who is asking, and query parameters more than one route takes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query

from trainyard.api.auth import CurrentUser
from trainyard.api.params import AttemptNumber
from trainyard.api.platform import Platform, get_platform
from trainyard.control import jobs
from trainyard.principal import Forbidden, Principal
from trainyard.spec import INT32_MAX, INT64_MAX, MAX_WORKERS
from trainyard.store import access, repo
from trainyard.tracking import history


def readable_job(job_id: str, who: CurrentUser, platform: Platform = Depends(get_platform)) -> str:
    """A job id the caller may read (its team's viewer or more, or the job's own ranks): else 404."""
    with platform.store.session() as s:
        jobs.readable(s, who, job_id)
    return job_id


def writable_job(job_id: str, who: CurrentUser, platform: Platform = Depends(get_platform)) -> str:
    """A job id the caller may change (its team's member or more): 404 if unseen, else 403."""
    with platform.store.session() as s:
        jobs.writable(s, who, job_id)
    return job_id


ReadableJob = Annotated[str, Depends(readable_job)]
WritableJob = Annotated[str, Depends(writable_job)]


def rank_credential(job_id: str, attempt: AttemptNumber, who: CurrentUser) -> None:
    """The routes of one attempt take that attempt's own credential (DESIGN.md, fencing): ranks get
    it as TRAINYARD_TOKEN at launch; no user's token writes as a rank."""
    if not who.is_rank:
        raise Forbidden("the routes of an attempt take that attempt's own credential, which its ranks get "
                        "as TRAINYARD_TOKEN; a user's token cannot write as a rank")
    if who.job_id != job_id:
        raise repo.NotFound(repo.missing_job(job_id))
    if who.attempt != attempt:
        raise Forbidden(f"this credential is attempt {who.attempt}'s of job {job_id}, not attempt {attempt}'s")


@dataclass
class HistoryQuery:
    """Which points of a metric's history, in which shape (a job's and its run's routes alike)."""

    max_points: int | None = Query(None, ge=2, le=100_000, description="Down-sample to at most this many.")
    format: history.Shape = Query("points", description="'points' (objects) or 'columns' (parallel arrays).")


@dataclass
class LogQuery:
    """Which rank's log, of which attempt (default: the latest), from which byte."""

    rank: int = Query(0, ge=0, lt=MAX_WORKERS, description="The rank whose output to read.")
    attempt: int | None = Query(None, ge=1, le=INT32_MAX, description="Which attempt; the current one if omitted.")
    offset: int = Query(0, ge=0, le=INT64_MAX, description="Bytes already read: the `offset` of the previous answer.")


def uploader(who: CurrentUser) -> Principal:
    """A caller who is a member of some team: content-addressed uploads (code archives) are stored
    once for every team, so storing one takes a role that could use it, before the body is read."""
    access.require_writer(who, "upload content")
    return who


Uploader = Annotated[Principal, Depends(uploader)]
