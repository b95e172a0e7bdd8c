"""A metric's history: in full, as columns, or down-sampled for plotting.

The points come from a few columnar chunks (repo.metric_arrays) as numpy arrays and are
encoded straight from them with orjson, skipping FastAPI's per-item encoder. NaN is null.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import orjson
from sqlalchemy.orm import Session

from trainyard.store import repo
from trainyard.tracking.runs import run_exists

Shape = Literal["points", "columns"]
_NUMPY = orjson.OPT_SERIALIZE_NUMPY


def encode(run_id: str, key: str, columns: dict[str, np.ndarray], shape: Shape, **meta: Any) -> bytes:
    doc: dict[str, Any] = {"key": key, "run_id": run_id, **meta}
    if shape == "columns":
        doc.update(columns)
        return orjson.dumps(doc, option=_NUMPY)
    lists = {n: c.tolist() for n, c in columns.items()}  # orjson writes NaN floats as null
    if list(lists) == ["step", "timestamp", "value"]:
        doc["points"] = [{"step": a, "timestamp": b, "value": c}
                         for a, b, c in zip(lists["step"], lists["timestamp"], lists["value"], strict=True)]
    else:
        names = list(lists)
        doc["points"] = [dict(zip(names, row, strict=True)) for row in zip(*lists.values(), strict=True)]
    return orjson.dumps(doc)


def of_run(s: Session, run_id: str, key: str, max_points: int | None, shape: Shape = "points") -> bytes:
    """A run's history of `key`: in full, or down-sampled to `max_points`; NotFound if there is no run."""
    if not run_exists(s, run_id):
        raise repo.NotFound(f"no run {run_id!r}; list runs with `yard runs list`")
    return sampled(s, run_id, key, max_points, shape) if max_points else full(s, run_id, key, shape)


def full(s: Session, run_id: str, key: str, shape: Shape = "points") -> bytes:
    """Every point in step order."""
    st, ts, vs = repo.metric_arrays(s, run_id, key)
    return encode(run_id, key, {"step": st, "timestamp": ts, "value": vs}, shape,
                  total=len(st), sampled=False)


def sampled(s: Session, run_id: str, key: str, max_points: int, shape: Shape = "points") -> bytes:
    """At most `max_points` points: steps split into equal-width buckets, each shown as the mean
    of its values with min, max and count beside it, so spikes survive the thinning."""
    st, ts, vs = repo.metric_arrays(s, run_id, key)
    if len(st) <= max_points:
        return encode(run_id, key, {"step": st, "timestamp": ts, "value": vs}, shape,
                      total=len(st), sampled=False)
    lo, hi = int(st[0]), int(st[-1])
    width = max(1, -(-(hi - lo + 1) // max_points))
    bucket = (st - lo) // width
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])  # steps are sorted
    finite = ~np.isnan(vs)
    counts = np.add.reduceat(finite.astype(np.int64), starts)
    sums = np.add.reduceat(np.where(finite, vs, 0.0), starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    columns = {
        "step": st[starts], "timestamp": np.maximum.reduceat(ts, starts), "value": means,
        "min": np.fmin.reduceat(vs, starts), "max": np.fmax.reduceat(vs, starts),
        "count": np.diff(np.r_[starts, len(st)]),
    }
    return encode(run_id, key, columns, shape, total=len(st), sampled=True, bucket_steps=width)
