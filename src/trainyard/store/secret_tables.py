"""Each team's secrets: values a job's ranks get in their environment, encrypted at rest.

A value is kept only as a Fernet token (`auth/secrets.py`); the key lives with the server, never
in the database, so a copy of the database alone reveals no secret.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from trainyard.store.base import Base, utcnow


class SecretRow(Base):
    """One secret of one team, known by a name unique in that team."""

    __tablename__ = "secrets"

    team: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    ciphertext: Mapped[str] = mapped_column(Text)  # a Fernet token: the value, encrypted and authenticated
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(64))
