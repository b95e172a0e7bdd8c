"""Metric batches off the wire: decode, validate, and hand columns to the store in bulk.

`POST .../metrics` takes `{"points": [{"key", "step", "timestamp", "value"}, ...]}`, or the same
points as parallel arrays, `{"columns": {"key": [...], "step": [...], "timestamp": [...],
"value": [...]}}`, which decodes and checks several times faster (no object per point).
Either as JSON (`application/json`) or MessagePack (`application/msgpack`). A null value is NaN.

Pydantic stays off this path: type checks run over whole columns (or one tight loop over
points) and build the row tuples the driver takes; any bad point refuses the whole batch
with a 422 naming it (`points.3.value`, `columns.step.3`), so nothing is half-written.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import msgpack
import orjson

from trainyard.principal import Principal
from trainyard.spec import SpecError
from trainyard.store import Store, repo
from trainyard.tracking.runs import check_writable

JSON = "application/json"
MSGPACK = "application/msgpack"
MSGPACK_TYPES = frozenset({MSGPACK, "application/x-msgpack", "application/vnd.msgpack"})
MAX_POINTS = 100_000
MAX_KEY = 250
INT64 = 2**63
_NUMBER = (float, int)
_VALUE = (float, int, type(None))

class InvalidBatch(SpecError):
    """A batch refused whole: a 422 naming the bad point's field."""

    def __init__(self, field: str, message: str):
        super().__init__([{"field": field, "message": message}])


class UnsupportedEncoding(ValueError):
    pass


def decode(body: bytes, content_type: str | None) -> Any:
    media = (content_type or JSON).split(";", 1)[0].strip().lower()
    if media in MSGPACK_TYPES:
        try:
            return msgpack.unpackb(body, raw=False, strict_map_key=True)
        except (ValueError, RecursionError, msgpack.UnpackException) as exc:
            raise InvalidBatch("(body)", f"not valid MessagePack: {exc}") from None
    if media == JSON or media.endswith("+json"):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
        try:  # Python's json writes NaN and Infinity as bare words; orjson refuses them
            return json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise InvalidBatch("(body)", f"not valid JSON: {exc}") from None
    raise UnsupportedEncoding(
        f"content-type {media!r} is not accepted for metric points; send {JSON} or {MSGPACK}"
    )


class Columns(NamedTuple):
    """A validated batch as parallel columns (None is NaN), what the store writes."""

    keys: list[str]
    steps: list[int]
    timestamps: list[float]
    values: list[float | None]


class RunPoints:
    """Writes batches to client runs for one store: the hot path, so one Core transaction per batch,
    off the ORM. The batch is refused as missing (404) for a run the caller may not read, with a 403
    for a caller who is no member of the run's team, and with a 409 for a job's run, whose metrics
    come only from its current attempt, and for a finished run; that check is in the write's own
    locked transaction, so a run cannot end between them."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def write(self, who: Principal, run_id: str, batch: Columns) -> int:
        """Append a validated batch to the run, all or nothing; NotFound if there is no such run."""
        with self.store.connection(lock=True) as conn:
            check_writable(conn, who, run_id, "metrics")
            return repo.insert_metric_columns(conn, run_id, *batch)


def columns(doc: Any) -> Columns:
    """The batch's points as columns; InvalidBatch (a 422 naming the point) if any is bad."""
    if isinstance(doc, dict) and "columns" in doc:
        return _columns(doc["columns"])
    points = doc.get("points") if isinstance(doc, dict) else None
    if not isinstance(points, list):
        raise InvalidBatch("points", 'send {"points": [{"key", "step", "timestamp", "value"}, ...]} '
                                     'or {"columns": {"key": [...], "step": [...], ...}}')
    if len(points) > MAX_POINTS:
        raise InvalidBatch("points", f"{len(points)} points in one batch; send at most {MAX_POINTS}")
    keys: list[str] = []
    steps: list[int] = []
    stamps: list[float] = []
    values: list[float | None] = []
    try:
        for p in points:
            key, step, ts, value = p["key"], p["step"], p["timestamp"], p["value"]
            if type(key) is not str or type(step) is not int or type(ts) not in _NUMBER or (
                type(value) not in _VALUE
            ):
                raise TypeError
            keys.append(key)
            steps.append(step)
            stamps.append(ts)
            values.append(value)
    except (KeyError, TypeError):
        raise _first_bad_point(points) from None
    if keys:
        _check_ranges(keys, steps, "points.{i}.{field}")
        _check_numbers(stamps, values, "points.{i}.{field}")
    return Columns(keys, steps, stamps, values)


_COLUMN_TYPES = (
    ("key", frozenset({str}), "a string"),
    ("step", frozenset({int}), "an integer"),
    ("timestamp", frozenset({float, int}), "a number (seconds since the epoch)"),
    ("value", frozenset({float, int, type(None)}), "a number (null for NaN)"),
)


def _columns(cols: Any) -> Columns:
    if not isinstance(cols, dict):
        raise InvalidBatch("columns", "an object of four arrays: key, step, timestamp, value")
    arrays = []
    for name, types, what in _COLUMN_TYPES:
        col = cols.get(name)
        if not isinstance(col, list):
            raise InvalidBatch(f"columns.{name}", "missing, or not an array")
        if not set(map(type, col)) <= types:  # one pass in C over the column
            i = next(i for i, v in enumerate(col) if type(v) not in types)
            raise InvalidBatch(f"columns.{name}.{i}", f"must be {what}, got {col[i]!r}"[:200])
        arrays.append(col)
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise InvalidBatch("columns", "key, step, timestamp and value must have the same length")
    if n > MAX_POINTS:
        raise InvalidBatch("columns", f"{n} points in one batch; send at most {MAX_POINTS}")
    if n:
        _check_ranges(arrays[0], arrays[1], "columns.{field}.{i}")
        _check_numbers(arrays[2], arrays[3], "columns.{field}.{i}")
    return Columns(*arrays)


def _check_ranges(keys: Sequence[str], steps: Sequence[int], where: str) -> None:
    for key in set(keys):
        if not key or len(key) > MAX_KEY:
            i = keys.index(key)
            raise InvalidBatch(where.format(field="key", i=i), f"a key is 1 to {MAX_KEY} characters")
    if min(steps) < -INT64 or max(steps) >= INT64:
        i = next(i for i, s in enumerate(steps) if not -INT64 <= s < INT64)
        raise InvalidBatch(where.format(field="step", i=i), "a step is a 64-bit integer")


def _check_numbers(stamps: Sequence[float], values: Sequence[float | None], where: str) -> None:
    """Timestamps are finite; values (NaN and infinities allowed) fit a 64-bit float. The
    fast path is one pass in C per column; the slow one finds the point to name."""
    try:
        stamps_ok = all(map(math.isfinite, stamps))
    except OverflowError:  # an integer past the float range
        stamps_ok = False
    if not stamps_ok:
        i = next(i for i, t in enumerate(stamps) if not _finite(t))
        raise InvalidBatch(where.format(field="timestamp", i=i),
                           "a timestamp is a finite number of seconds since the epoch")
    if int in set(map(type, values)):
        for i, v in enumerate(values):
            if type(v) is int and not _finite(v):
                raise InvalidBatch(where.format(field="value", i=i), "a value must fit a 64-bit float")


def _finite(number: float) -> bool:
    try:
        return math.isfinite(number)
    except OverflowError:
        return False


def _first_bad_point(points: list[Any]) -> InvalidBatch:
    for i, p in enumerate(points):
        if not isinstance(p, dict):
            return InvalidBatch(f"points.{i}", "a point is an object {key, step, timestamp, value}")
        for field, ok, what in (
            ("key", lambda v: type(v) is str, "a string"),
            ("step", lambda v: type(v) is int, "an integer"),
            ("timestamp", lambda v: type(v) in _NUMBER, "a number (seconds since the epoch)"),
            ("value", lambda v: type(v) in _VALUE, "a number (null for NaN)"),
        ):
            if field not in p:
                return InvalidBatch(f"points.{i}.{field}", "missing")
            if not ok(p[field]):
                return InvalidBatch(f"points.{i}.{field}", f"must be {what}, got {p[field]!r}"[:200])
    return InvalidBatch("points", "malformed batch")

