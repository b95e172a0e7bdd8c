"""Who may do what: users and service accounts, their roles per team, and their API tokens.

A token is stored only as its SHA-256 digest (tokens are 256 random bits, so a fast digest is
enough: there is nothing to guess). A rank's credential lives on its attempt row
(`Attempt.token_digest`), minted at launch, and is good only while that attempt is current.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from trainyard.store.base import Base, utcnow


class UserRow(Base):
    """A person or a service account (`kind`), known by a unique name."""

    __tablename__ = "users"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default="user")  # user | service
    email: Mapped[str | None] = mapped_column(String(254))
    platform_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MembershipRow(Base):
    """One user's role in one team: admin, member or viewer."""

    __tablename__ = "memberships"

    team: Mapped[str] = mapped_column(String(64), primary_key=True)
    user: Mapped[str] = mapped_column(ForeignKey("users.name"), primary_key=True, index=True)
    role: Mapped[str] = mapped_column(String(16))


class TokenRow(Base):
    """An API token: a bearer credential of one user, at most their roles, maybe fewer (`scopes`)."""

    __tablename__ = "tokens"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    user: Mapped[str] = mapped_column(ForeignKey("users.name"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[dict | None] = mapped_column(JSON)  # {team: role}; None: all of the user's roles
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
