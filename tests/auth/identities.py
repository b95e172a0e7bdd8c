"""People other than the platform admin, made the way an operator's tooling would: through
trainyard.auth.identity on a Store opened on the running server's own database."""

from __future__ import annotations

from tests.conftest import Server
from trainyard.auth import identity
from trainyard.principal import Role
from trainyard.store import Store


def user_token(server: Server, name: str, team: str = "default", role: Role = Role.MEMBER) -> str:
    """A new user with `role` in `team`, and a token of theirs."""
    store = Store(f"sqlite:///{server.home / 'trainyard.db'}")
    try:
        with store.session() as s:
            identity.create_user(s, name)
            identity.set_member(s, team, name, role)
            token, _ = identity.create_token(s, name, "tests")
    finally:
        store.close()
    return token


def token_id(token: str) -> str:
    """The id a token is known by in lists and audit rows (`ty<kind>_<id>_<secret>`)."""
    return token.split("_")[1]
