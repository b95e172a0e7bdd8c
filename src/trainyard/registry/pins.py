"""Checkpoints that model versions point to: retention must never delete them."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from trainyard.store.registry_tables import ModelVersion


def pinned_steps(s: Session, job_id: str) -> set[int]:
    """Steps of `job_id`'s checkpoints that some model version points to."""
    return set(s.scalars(select(ModelVersion.checkpoint_step).where(ModelVersion.run_id == job_id)))
