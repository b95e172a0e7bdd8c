"""Each team's secrets: set by its admins, listed by name to its members, read only by its jobs' ranks.

A job's spec names a secret (`env: {HF_TOKEN: {secret: HF_TOKEN}}`); admission refuses a name its
team does not have, and the control loop puts the value into the ranks' environment at launch
(`launch_env`), nowhere else. Values are encrypted at rest with Fernet (AES-128-CBC with an
HMAC-SHA256 tag): the key is the server's, from TRAINYARD_SECRETS_KEY or, on an embedded server,
`$TRAINYARD_HOME/secrets.key` (mode 0600, made at the first start), never from the database.
TRAINYARD_SECRETS_KEY may list several keys, comma-separated: the first encrypts, any decrypts,
so a new key can be put in front of the old one before values are set again.

No value ever leaves this module except to a launch, and the log redaction (`job_values`).
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from trainyard.config import ServerConfig
from trainyard.principal import Principal, Role
from trainyard.spec import ENV_NAME_PATTERN, MAX_TEXT, SpecError
from trainyard.store import access
from trainyard.store.base import utcnow
from trainyard.store.repo import NotFound
from trainyard.store.secret_tables import SecretRow

KEY_ENV = "TRAINYARD_SECRETS_KEY"
NAME_PATTERN = f"^{ENV_NAME_PATTERN}$"  # a secret is named like the variable it usually becomes
MAX_VALUE = MAX_TEXT  # characters: what one environment variable comfortably carries
MAX_PER_TEAM = 256


class SecretsKeyError(ValueError):
    """The server's key cannot be used: the server refuses to start rather than lose its secrets."""


class SecretUnreadable(RuntimeError):
    """A stored value the server's key cannot decrypt: the key changed since it was set."""


def _key_file(path: Path) -> bytes:
    """The embedded server's key: read, or made once (0600) by whichever process starts first."""
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(Fernet.generate_key() + b"\n")
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(tmp, path)  # never replaces a key another process made meanwhile
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_bytes().strip()


@lru_cache(maxsize=8)
def _keyring(configured: str | None, key_file: Path) -> MultiFernet:
    if configured:
        keys, where = [k.strip().encode() for k in configured.split(",") if k.strip()], KEY_ENV
    else:
        keys, where = [_key_file(key_file)], str(key_file)
    try:
        return MultiFernet([Fernet(k) for k in keys])
    except ValueError:
        raise SecretsKeyError(
            f"{where} must hold Fernet keys (32 url-safe base64-encoded bytes each, comma-separated); make "
            "one with `python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`"
        ) from None


def keyring(config: ServerConfig) -> MultiFernet:
    """The server's keys: the configured ones, else the home's key file, made at the first call."""
    return _keyring(config.secrets_key, config.secrets_key_file)


def _missing(team: str, name: str) -> str:
    return f"team {team!r} has no secret {name!r}; see `yard secrets list {team}`"


def _not_yours(team: str) -> str:
    return f"no team {team!r} that you belong to: a team's secrets are its members' to see"


def _check(name: str, value: str) -> None:
    errors = []
    if not re.fullmatch(NAME_PATTERN, name):
        errors.append({"field": "name", "message": f"{name[:130]!r} is not a secret name: use ASCII letters, "
                                                   "digits and '_', not starting with a digit (at most 128)"})
    if not value:
        errors.append({"field": "value", "message": "the value is empty; give the secret's value"})
    elif len(value) > MAX_VALUE:
        errors.append({"field": "value", "message": f"the value is {len(value)} characters long; at most "
                                                    f"{MAX_VALUE}: keep larger credentials in a dataset"})
    elif "\x00" in value:  # never echo the value, not even a part of it
        errors.append({"field": "value", "message": "the value contains a NUL character, which no "
                                                    "environment variable can carry"})
    if errors:
        raise SpecError(errors)


def put(s: Session, keys: MultiFernet, who: Principal, team: str, name: str, value: str) -> SecretRow:
    """Set (or replace) a secret of `team`: takes the team's admin role (or a platform admin)."""
    access.require_role(who, team, _not_yours(team), Role.ADMIN, "set its secrets")
    _check(name, value)
    row = s.get(SecretRow, (team, name))
    now = utcnow()
    if row is None:
        held = s.scalar(select(func.count()).select_from(SecretRow).where(SecretRow.team == team)) or 0
        if held >= MAX_PER_TEAM:
            raise SpecError([{"field": "name", "message": f"team {team!r} holds {held} secrets, the most a team "
                                                          "may; delete one first (`yard secrets delete`)"}])
        row = SecretRow(team=team, name=name, created_at=now)
        s.add(row)
    row.ciphertext = keys.encrypt(value.encode()).decode()
    row.updated_at, row.updated_by = now, who.name
    s.flush()
    return row


def listing(s: Session, who: Principal, team: str) -> list[SecretRow]:
    """The names of `team`'s secrets (never their values): takes member in the team."""
    access.require_role(who, team, _not_yours(team), Role.MEMBER, "list its secrets")
    return list(s.scalars(select(SecretRow).where(SecretRow.team == team).order_by(SecretRow.name)))


def delete(s: Session, who: Principal, team: str, name: str) -> None:
    """Takes the team's admin role. Jobs that name it and have not launched yet fail at launch."""
    access.require_role(who, team, _missing(team, name), Role.ADMIN, "delete its secrets")
    row = s.get(SecretRow, (team, name))
    if row is None:
        raise NotFound(_missing(team, name))
    s.delete(row)


def require_refs(s: Session, team: str, refs: dict[str, str]) -> None:
    """Admission: every secret a spec names (env name -> secret name) is one of its team's."""
    if not refs:
        return
    held = set(s.scalars(select(SecretRow.name).where(SecretRow.team == team,
                                                       SecretRow.name.in_(sorted(set(refs.values()))))))
    errors = [{"field": f"env.{env}", "message": f"team {team!r} has no secret {name!r}; a team admin sets it "
                                                 f"with `yard secrets set {team} {name}` (the value on stdin)"}
              for env, name in sorted(refs.items()) if name not in held]
    if errors:
        raise SpecError(errors)


def _decrypt(keys: MultiFernet, row: SecretRow) -> str:
    try:
        return keys.decrypt(row.ciphertext.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable(
            f"secret {row.name!r} of team {row.team!r} cannot be decrypted with this server's key (did "
            f"{KEY_ENV} or secrets.key change?); set it again with `yard secrets set {row.team} {row.name}`"
        ) from None


def launch_env(s: Session, keys: MultiFernet, team: str, refs: dict[str, str]) -> dict[str, str]:
    """The values a launch puts in the ranks' environment (env name -> value). NotFound names a
    secret deleted since admission; SecretUnreadable one the key cannot open."""
    rows = _rows(s, team, refs)
    missing = sorted(env for env, name in refs.items() if name not in rows)
    if missing:
        env = missing[0]
        raise NotFound(f"env.{env}: team {team!r} no longer has secret {refs[env]!r}; set it again with "
                       f"`yard secrets set {team} {refs[env]}` and resubmit")
    return {env: _decrypt(keys, rows[name]) for env, name in refs.items()}


def job_values(s: Session, keys: MultiFernet, team: str, refs: dict[str, str]) -> dict[str, str]:
    """For redaction: the values the job's secrets hold now (env name -> value), those that still exist."""
    rows = _rows(s, team, refs)
    values = {}
    for env, name in refs.items():
        if name in rows:
            try:
                values[env] = _decrypt(keys, rows[name])
            except SecretUnreadable:
                continue
    return values


def _rows(s: Session, team: str, refs: dict[str, str]) -> dict[str, SecretRow]:
    if not refs:
        return {}
    found = s.scalars(select(SecretRow).where(SecretRow.team == team, SecretRow.name.in_(sorted(set(refs.values())))))
    return {r.name: r for r in found}
