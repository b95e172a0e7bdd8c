"""Where a server keeps its state and what it listens on, from the environment.

`TRAINYARD_HOME` (default ~/.trainyard) holds the embedded SQLite store, blobs,
checkpoints and logs; `TRAINYARD_DATABASE_URL` points the store at any
SQLAlchemy URL instead, and `TRAINYARD_BLOB_URL` the blob store at any fsspec
URL (`s3://bucket/prefix`, with the usual AWS_* variables). `TRAINYARD_ALLOWED_HOSTS`
(comma-separated) lists the host names the API answers to besides localhost and the
address it listens on. `TRAINYARD_DATABASE_BUSY_TIMEOUT_S` (default 30) is how long a
write waits for SQLite's lock before the api answers 503 "retry shortly".
`TRAINYARD_SECRETS_KEY` is the key (Fernet; comma-separated for
several) the teams' secrets are encrypted with; without it a server makes one at its first start
in `$TRAINYARD_HOME/secrets.key`.
`TRAINYARD_WRITE_RATE` and `TRAINYARD_WRITE_BURST` set how many writes a
second each token may make, and how many at once, before it is answered 429 (api/rate_limits.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

WRITE_RATE = 20.0  # writes a second per token, sustained; metric batches and heartbeats are not counted
WRITE_BURST = 100  # writes at once per token


def trainyard_home() -> Path:
    return Path(os.environ.get("TRAINYARD_HOME", Path.home() / ".trainyard")).expanduser().resolve()


def database_busy_timeout_s() -> float:
    return float(os.environ.get("TRAINYARD_DATABASE_BUSY_TIMEOUT_S") or 30.0)


@dataclass
class ServerConfig:
    home: Path = field(default_factory=trainyard_home)
    host: str = "127.0.0.1"
    port: int = 8765
    database_url: str | None = None
    database_busy_timeout_s: float = field(default_factory=database_busy_timeout_s)
    reconcile_interval_s: float = 0.25
    stop_grace_s: float = 30.0  # SIGTERM -> SIGKILL, for cancel
    preemption_grace_s: float = 30.0  # SIGTERM -> SIGKILL, for a preempted gang to checkpoint
    policy: str = "trainyard"  # trainyard | backfill | fifo
    teams_file: Path | None = None
    blob_url: str | None = None  # code archives and artifacts; default: a directory under home
    cpus: float | None = None  # capacity overrides; default: this machine's
    gpus: int | None = None
    memory_gb: float | None = None
    allowed_hosts: tuple[str, ...] | None = None  # Host header names; default: localhost + `host` + env
    orphan_grace_s: float = 3600.0  # files no row names are deleted once unwritten this long
    secrets_key: str | None = field(default=None, repr=False)  # default: TRAINYARD_SECRETS_KEY, else the key file
    write_rate: float | None = None  # per token; default: TRAINYARD_WRITE_RATE, else WRITE_RATE
    write_burst: int | None = None  # per token; default: TRAINYARD_WRITE_BURST, else WRITE_BURST

    def __post_init__(self) -> None:
        self.home = Path(self.home).expanduser().resolve()
        if self.database_url is None:
            default = f"sqlite:///{self.home / 'trainyard.db'}"
            self.database_url = os.environ.get("TRAINYARD_DATABASE_URL") or default
        if self.blob_url is None:
            self.blob_url = os.environ.get("TRAINYARD_BLOB_URL") or str(self.home / "blobs")
        if self.allowed_hosts is None:
            extra = [h.strip() for h in os.environ.get("TRAINYARD_ALLOWED_HOSTS", "").split(",") if h.strip()]
            self.allowed_hosts = ("localhost", "127.0.0.1", "::1", self.host, *extra)
        if self.secrets_key is None:
            self.secrets_key = os.environ.get("TRAINYARD_SECRETS_KEY") or None
        if self.write_rate is None:
            self.write_rate = _positive("TRAINYARD_WRITE_RATE", float, WRITE_RATE, "writes a second per token")
        if self.write_burst is None:
            self.write_burst = int(_positive("TRAINYARD_WRITE_BURST", int, WRITE_BURST, "writes at once per token"))
        if not (self.write_rate > 0 and self.write_burst >= 1):
            raise ValueError(f"the write rate limit must be positive (rate {self.write_rate}/s, burst "
                             f"{self.write_burst}): set --write-rate above 0 and --write-burst to 1 or more")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def checkpoints(self) -> Path:
        return self.home / "checkpoints"

    @property
    def token_file(self) -> Path:
        """The platform admin's token for this machine's CLI (mode 0600), written at start."""
        return self.home / "token"

    @property
    def secrets_key_file(self) -> Path:
        """The embedded server's key for the teams' secrets (mode 0600), when none is configured."""
        return self.home / "secrets.key"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def workdirs(self) -> Path:
        return self.home / "work"

    def make_dirs(self) -> None:
        for d in (self.home, self.checkpoints, self.logs, self.workdirs):
            d.mkdir(parents=True, exist_ok=True)


def _positive(name: str, kind: type[float] | type[int], default: float, what: str) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise ValueError(f"{name}={text!r}: expected a positive {kind.__name__} ({what})")
    return value
