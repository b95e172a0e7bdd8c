"""Sweeps, their trials and their events: everything a sweep's study is rebuilt from."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from trainyard.store.base import Base, utcnow


class Sweep(Base):
    __tablename__ = "sweeps"

    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    team: Mapped[str] = mapped_column(String(64), index=True)
    spec: Mapped[dict] = mapped_column(JSON)  # the SweepSpec with its trial template inlined and seed set
    code_digest: Mapped[str | None] = mapped_column(String(80))
    code_git_commit: Mapped[str | None] = mapped_column(String(64))
    code_git_dirty: Mapped[bool | None] = mapped_column(Boolean)
    state: Mapped[str] = mapped_column(String(16), index=True)  # RUNNING, SUCCEEDED, FAILED, CANCELLED
    reason: Mapped[str] = mapped_column(Text, default="")
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None]


class SweepTrial(Base):
    """One trial: an ordinary job, plus what its sweep's study was told about it."""

    __tablename__ = "sweep_trials"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    sweep_id: Mapped[str] = mapped_column(ForeignKey("sweeps.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), unique=True)
    params: Mapped[dict] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))  # RUNNING, COMPLETE, PRUNED, FAILED, CANCELLED
    value: Mapped[float | None] = mapped_column(Float)
    pruned_at: Mapped[int | None] = mapped_column(Integer)  # the resource (e.g. epoch) it was pruned at
    system_attrs: Mapped[dict] = mapped_column(JSON, default=dict)  # what the sampler/pruner noted
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_sweep_trials_sweep_number", "sweep_id", "number", unique=True),)


class SweepEvent(Base):
    __tablename__ = "sweep_events"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    sweep_id: Mapped[str] = mapped_column(ForeignKey("sweeps.id"), index=True)
    time: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(Text)
