"""Tables of datasets, lineage and the model registry.

A dataset snapshot is an immutable manifest (path, bytes, sha256 of every file)
whose files live content-addressed in the blob store, so a file unchanged
between versions is stored once. A model version points at one committed
checkpoint of a run; retention never deletes a checkpoint a version points to.
Every alias move is a `model_events` row saying who moved it and why.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from trainyard.store.base import Base, utcnow


class Dataset(Base):
    """A dataset's name is unique on the server; it belongs to one team (who may read and add
    versions) and is filed under one project."""

    __tablename__ = "datasets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    team: Mapped[str] = mapped_column(String(64), index=True)
    project: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128), default="")


class DatasetVersion(Base):
    """NAME@vN: a manifest of files; `digest` is the sha256 of the manifest's canonical JSON."""

    __tablename__ = "dataset_versions"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    dataset: Mapped[str] = mapped_column(ForeignKey("datasets.name"))
    version: Mapped[int] = mapped_column(Integer)
    digest: Mapped[str] = mapped_column(String(80))
    files: Mapped[list] = mapped_column(JSON)  # [{path, bytes, sha256}] sorted by path
    file_count: Mapped[int] = mapped_column(Integer)
    bytes: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(Text, default="")  # where it was made from, for people
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128), default="")

    __table_args__ = (Index("ix_dataset_versions_name_version", "dataset", "version", unique=True),)


class RunLineage(Base):
    """What a job's run was made from, beyond the job row: recorded at its first launch."""

    __tablename__ = "run_lineage"

    run_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), primary_key=True)
    dataset: Mapped[str | None] = mapped_column(String(80))  # NAME@vN
    dataset_digest: Mapped[str | None] = mapped_column(String(80))
    python: Mapped[str] = mapped_column(String(64))
    platform: Mapped[str] = mapped_column(String(255))
    packages: Mapped[dict] = mapped_column(JSON)  # {distribution: version} of the ranks' interpreter
    rerun_of: Mapped[str | None] = mapped_column(String(80))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class Model(Base):
    """A model's name is unique on the server; it belongs to one team, whose members change it."""

    __tablename__ = "models"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    team: Mapped[str] = mapped_column(String(64), index=True)
    project: Mapped[str] = mapped_column(String(64), index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    evaluation: Mapped[dict | None] = mapped_column(JSON)  # an EvaluationSpec, or None: no gate
    code_digest: Mapped[str | None] = mapped_column(String(80))  # the evaluation's code archive
    code_git_commit: Mapped[str | None] = mapped_column(String(64))
    code_git_dirty: Mapped[bool | None] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128), default="")


class ModelVersion(Base):
    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(ForeignKey("models.name"))
    version: Mapped[int] = mapped_column(Integer)
    run_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    checkpoint_step: Mapped[int] = mapped_column(Integer)
    checkpoint_uri: Mapped[str] = mapped_column(Text)
    checkpoint_metrics: Mapped[dict] = mapped_column(JSON, default=dict)
    description: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[dict] = mapped_column(JSON, default=dict)
    # NONE (no evaluation declared), PENDING, RUNNING, PASSED, FAILED
    eval_state: Mapped[str] = mapped_column(String(16))
    eval_job_id: Mapped[str | None] = mapped_column(String(80))
    eval_metrics: Mapped[dict] = mapped_column(JSON, default=dict)
    eval_reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128), default="")

    __table_args__ = (Index("ix_model_versions_model_version", "model", "version", unique=True),)


class ModelAlias(Base):
    __tablename__ = "model_aliases"

    model: Mapped[str] = mapped_column(ForeignKey("models.name"), primary_key=True)
    alias: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(128), default="")


class ModelEvent(Base):
    """Everything that happened to a model: registrations, evaluations, alias moves (who, why)."""

    __tablename__ = "model_events"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(ForeignKey("models.name"))
    version: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(40))
    alias: Mapped[str | None] = mapped_column(String(64))
    from_version: Mapped[int | None] = mapped_column(Integer)
    to_version: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(128), default="")
    reason: Mapped[str] = mapped_column(Text)
    time: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_model_events_model_id", "model", "id"),)
