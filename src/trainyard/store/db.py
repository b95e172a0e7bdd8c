"""Engine and sessions; migrations are applied on open so a new home just works."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"


BUSY_TIMEOUT_S = 30.0  # how long a write waits for SQLite's lock before the api answers 503


def _sqlite_pragmas(busy_timeout_s: float, dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")  # durable across a crash; `session(durable=True)` for more
    cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _back_to_normal(dbapi_conn, record) -> None:  # type: ignore[no-untyped-def]
    if record.info.pop(_SYNC_FULL, False):
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()


_SYNC_FULL = "trainyard_synchronous_full"


def make_engine(url: str, busy_timeout_s: float = BUSY_TIMEOUT_S) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": busy_timeout_s})
        event.listen(engine, "connect", partial(_sqlite_pragmas, busy_timeout_s))
        event.listen(engine, "checkin", _back_to_normal)
        return engine
    return create_engine(url, pool_pre_ping=True)


def migrate(engine: Engine) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "heads")  # features add their own branch off 0001; all are applied


def write_lock(conn: Connection) -> None:
    """Open the transaction holding the database's write lock, before its first read.

    pysqlite starts a transaction only at the first INSERT, UPDATE or DELETE, so a check's SELECT
    would run outside the write it guards; BEGIN IMMEDIATE takes SQLite's single write lock now
    (waiting up to busy_timeout). PostgreSQL needs nothing here: the check locks its rows with
    SELECT ... FOR UPDATE, which SQLite ignores.
    """
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class Store:
    """The database behind one server: an engine plus a session factory. `busy_timeout_s`: how long
    a SQLite write waits for another's lock before it fails with "database is locked"."""

    def __init__(self, url: str, busy_timeout_s: float = BUSY_TIMEOUT_S):
        self.url = url
        self.engine = make_engine(url, busy_timeout_s)
        migrate(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self, durable: bool = False, lock: bool = False) -> Iterator[Session]:
        """A unit of work: committed on success, rolled back on any error.

        `durable`: the commit is on disk when this returns, even across a power cut (SQLite:
        synchronous=FULL for this transaction). For records that files are deleted on the
        strength of, such as checkpoint commits and retention's marks. Other writes (metric
        batches above all) survive a crash of the server and skip the fsync per commit.
        `lock`: the transaction holds the write lock from its start (`write_lock`), for a check
        and the write it guards; its `info["locked"]` says so.
        """
        with self._sessions() as s, s.begin():
            if durable and self.engine.dialect.name == "sqlite":
                conn = s.connection()
                conn.exec_driver_sql("PRAGMA synchronous=FULL")  # before pysqlite's BEGIN, so it applies
                conn.connection.info[_SYNC_FULL] = True  # the pool puts it back on check-in
            if lock:
                write_lock(s.connection())
                s.info["locked"] = True
            yield s

    @contextmanager
    def connection(self, lock: bool = False) -> Iterator[Connection]:
        """A Core connection in one transaction (the cheaper path for bulk writes); `lock` as in `session`."""
        with self.engine.begin() as conn:
            if lock:
                write_lock(conn)
            yield conn

    def close(self) -> None:
        self.engine.dispose()
