"""People for tests that act as someone other than the platform admin: users, their roles per
team and a token each, made in a server's own database as an operator would."""

from __future__ import annotations

from pathlib import Path

from trainyard.auth import identity
from trainyard.principal import Role
from trainyard.store import Store
from trainyard.store.auth_tables import UserRow


def people(home: Path, roles: dict[str, dict[str, Role]]) -> dict[str, str]:
    """Users with these roles per team, in the database of the server at `home`; their tokens by name."""
    store = Store(f"sqlite:///{home / 'trainyard.db'}")
    tokens = {}
    try:
        with store.session(lock=True) as s:
            for name, teams in roles.items():
                if s.get(UserRow, name) is None:
                    identity.create_user(s, name)
                for team, role in teams.items():
                    identity.set_member(s, team, name, role)
                tokens[name], _ = identity.create_token(s, name, "tests")
    finally:
        store.close()
    return tokens
