"""Request dependencies shared by the routers: who is asking, and query parameters more than one route takes.

There is no authentication yet: the caller is whatever the `X-Trainyard-User` header
says (the CLI sends $USER), or "anonymous". Treat it as a label, not an identity.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Header, Query

from trainyard.spec import INT32_MAX, INT64_MAX, MAX_WORKERS
from trainyard.tracking import history


def actor(x_trainyard_user: str | None = Header(None, max_length=128,
                                                   description="Who is asking (no authentication yet).")) -> str:
    """The caller's name, for the history of what they change."""
    return (x_trainyard_user or "").strip() or "anonymous"


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
