"""Tracking tables: runs, their params, tags, latest metrics, artifacts and events.

A run is the tracking record of a job (same id) or of any process that called
`POST /v1/runs`, and belongs to a team (a job's run to its job's), whose roles
decide who reads and writes it and everything under it. Metric points live in `metric_chunks`, columnar: one row per
(batch, key) holding that batch's steps, timestamps and values as packed arrays,
so a batch of 1,000 points is one row to write and a 100,000-point history is
~100 rows to read. `latest_metrics` keeps the newest point of each (run, key) so
run lists and metric filters never read a history.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from trainyard.store.base import Base, utcnow


class MetricChunk(Base):
    """Points of one key from one batch: little-endian int64 steps, float64 timestamps and
    values (NaN as itself). No FK: written on the ingestion hot path, and `job_id` is a run id,
    a job's or a client's."""

    __tablename__ = "metric_chunks"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)  # the order chunks came in
    job_id: Mapped[str] = mapped_column(String(80))
    key: Mapped[str] = mapped_column(String(250))
    count: Mapped[int] = mapped_column(Integer)
    first_step: Mapped[int] = mapped_column(BigInteger)
    last_step: Mapped[int] = mapped_column(BigInteger)
    steps: Mapped[bytes] = mapped_column(LargeBinary)
    timestamps: Mapped[bytes] = mapped_column(LargeBinary)
    values: Mapped[bytes] = mapped_column(LargeBinary)

    __table_args__ = (Index("ix_metric_chunks_run_key", "job_id", "key", "id"),)


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(80), primary_key=True)  # == jobs.id for a job's run
    team: Mapped[str] = mapped_column(String(64))  # a job's run: the job's; who may read and write it
    name: Mapped[str] = mapped_column(String(64))
    project: Mapped[str] = mapped_column(String(64))
    experiment: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(8))  # "job" (state follows the job) or "client"
    state: Mapped[str | None] = mapped_column(String(16))  # client runs only; a job's run reads jobs.state
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_runs_project_experiment_created", "project", "experiment", "created_at"),
        Index("ix_runs_created", "created_at"),
        Index("ix_runs_team_created", "team", "created_at"),
    )


class RunParam(Base):
    """A hyperparameter: the text as logged, and its number when it reads as one (for < and >)."""

    __tablename__ = "run_params"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    number: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (Index("ix_run_params_key_number", "key", "number"),)


class RunTag(Base):
    __tablename__ = "run_tags"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index("ix_run_tags_key_value", "key", "value"),)


class LatestMetric(Base):
    """The newest point (highest step, then timestamp) of each key of a run. No FK: like
    `metrics`, it is written on the ingestion hot path, possibly before the run row exists."""

    __tablename__ = "latest_metrics"

    run_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    step: Mapped[int] = mapped_column(Integer)
    timestamp: Mapped[float] = mapped_column(Float)
    value: Mapped[float | None] = mapped_column(Float)  # NULL is NaN, as in `metrics`

    __table_args__ = (Index("ix_latest_metrics_key_value", "key", "value"),)


class RunArtifact(Base):
    """A file under a run. The bytes live in the blob store; this is the reference and checksum."""

    __tablename__ = "run_artifacts"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    path: Mapped[str] = mapped_column(String(1000), primary_key=True)
    uri: Mapped[str] = mapped_column(Text)
    bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RunEvent(Base):
    """State changes of client runs (a job's run has the job's events)."""

    __tablename__ = "run_events"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    time: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(Text)
