"""People other than the platform admin, made the way an operator's tooling would: through
trainyard.auth.identity on a Store opened on the running server's own database."""

from __future__ import annotations

from tests.conftest import Server
from tests.people import people
from trainyard.principal import Role


def user_token(server: Server, name: str, team: str = "default", role: Role = Role.MEMBER) -> str:
    """A new user with `role` in `team`, and a token of theirs."""
    return people(server.home, {name: {team: role}})[name]


def token_id(token: str) -> str:
    """The id a token is known by in lists and audit rows (`ty<kind>_<id>_<secret>`)."""
    return token.split("_")[1]
