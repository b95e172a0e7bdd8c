"""The audit log: one row per state-changing API call, accepted or refused (append-only).

A row names who (`actor`, and the id of the token they used, never the token), what (`action`:
the route's name, its method and template), to which object (the path parameters, and a
created object's id), when, from where (the client's address) and how it ended (`outcome`: the
HTTP status, with the refusal's reason). Request bodies are never stored. `team` is the team the
object belongs to where the call says so (its path or its answer), so that a team's admins can
read their team's rows.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Index, Integer, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from trainyard.store.base import Base, utcnow


class AuditRow(Base):
    __tablename__ = "audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)  # the order rows came in
    time: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(160))  # a user's name, "job/attempt-N", or "anonymous"
    token_id: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))  # the route's name: submit_job, cancel_job, ...
    method: Mapped[str] = mapped_column(String(8))
    route: Mapped[str] = mapped_column(String(256))  # the route's template, or the path if none matched
    object: Mapped[dict] = mapped_column(JSON)  # path parameters, plus a created object's id/name/version
    team: Mapped[str | None] = mapped_column(String(64), index=True)
    outcome: Mapped[int] = mapped_column(SmallInteger)  # the HTTP status answered
    reason: Mapped[str | None] = mapped_column(String(256))  # a refusal's detail, cut short
    source: Mapped[str | None] = mapped_column(String(64))  # the client's address

    __table_args__ = (Index("ix_audit_actor_id", "actor", "id"), Index("ix_audit_action_id", "action", "id"))
