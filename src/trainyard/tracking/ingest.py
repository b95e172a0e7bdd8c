"""Metric batches off the wire: decode, validate, and hand rows to the store in bulk.

`POST .../metrics` takes `{"points": [{"key", "step", "timestamp", "value"}, ...]}` as JSON
(`application/json`) or as MessagePack (`application/msgpack`, the same document, ~3x cheaper
to decode and to encode). Pydantic stays off this path: one tight loop checks each point and
builds the row tuple the driver takes, and any bad point refuses the whole batch with a 422
naming it (`points.3.value`), so nothing is half-written.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import msgpack
import orjson

from trainyard.spec import SpecError

JSON = "application/json"
MSGPACK = "application/msgpack"
MSGPACK_TYPES = frozenset({MSGPACK, "application/x-msgpack", "application/vnd.msgpack"})
MAX_POINTS = 100_000
MAX_KEY = 250
INT64 = 2**63
_NUMBER = (float, int)
_VALUE = (float, int, type(None))

Row = tuple[str, str, int, float, float | None]


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
        except (ValueError, msgpack.UnpackException) as exc:
            raise InvalidBatch("(body)", f"not valid MessagePack: {exc}") from None
    if media == JSON or media.endswith("+json"):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
        try:  # Python's json writes NaN and Infinity as bare words; orjson refuses them
            return json.loads(body)
        except ValueError as exc:
            raise InvalidBatch("(body)", f"not valid JSON: {exc}") from None
    raise UnsupportedEncoding(
        f"content-type {media!r} is not accepted for metric points; send {JSON} or {MSGPACK}"
    )


def rows(doc: Any, run_id: str) -> list[Row]:
    """The batch's points as (run_id, key, step, timestamp, value) rows; InvalidBatch if any is bad."""
    points = doc.get("points") if isinstance(doc, dict) else None
    if not isinstance(points, list):
        raise InvalidBatch("points", 'send {"points": [{"key", "step", "timestamp", "value"}, ...]}')
    if len(points) > MAX_POINTS:
        raise InvalidBatch("points", f"{len(points)} points in one batch; send at most {MAX_POINTS}")
    out: list[Row] = []
    append = out.append
    try:
        for p in points:
            key, step, ts, value = p["key"], p["step"], p["timestamp"], p["value"]
            if type(key) is not str or type(step) is not int or type(ts) not in _NUMBER or (
                type(value) not in _VALUE
            ):
                raise TypeError
            append((run_id, key, step, ts, value))
    except (KeyError, TypeError):
        raise _first_bad_point(points) from None
    if out:
        _check_ranges(out)
    return out


def _check_ranges(batch: Sequence[Row]) -> None:
    for key in {r[1] for r in batch}:
        if not key or len(key) > MAX_KEY:
            i = next(i for i, r in enumerate(batch) if r[1] == key)
            raise InvalidBatch(f"points.{i}.key", f"a key is 1 to {MAX_KEY} characters")
    steps = [r[2] for r in batch]
    if min(steps) < -INT64 or max(steps) >= INT64:
        i = next(i for i, s in enumerate(steps) if not -INT64 <= s < INT64)
        raise InvalidBatch(f"points.{i}.step", "a step is a 64-bit integer")


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

