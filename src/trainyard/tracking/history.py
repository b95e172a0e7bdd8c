"""A metric's history: in full, as columns, or down-sampled for plotting.

Answers are encoded here with orjson, skipping FastAPI's per-item encoder:
100,000 points are one range scan of the metrics primary key and one dumps().
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from trainyard.store import repo
from trainyard.store.tables import Metric

Shape = Literal["points", "columns"]


def count(s: Session, run_id: str, key: str) -> int:
    return int(s.scalar(select(func.count()).where(Metric.job_id == run_id, Metric.key == key)) or 0)


def full(s: Session, run_id: str, key: str, shape: Shape = "points") -> bytes:
    """Every point in step order; NaN values read as null."""
    rows = repo.metric_rows(s, run_id, key)
    doc: dict[str, Any] = {"key": key, "run_id": run_id, "total": len(rows), "sampled": False}
    if shape == "columns":
        doc.update(step=[r[0] for r in rows], timestamp=[r[1] for r in rows], value=[r[2] for r in rows])
    else:
        doc["points"] = [{"step": r[0], "timestamp": r[1], "value": r[2]} for r in rows]
    return orjson.dumps(doc)


def sampled(s: Session, run_id: str, key: str, max_points: int, shape: Shape = "points") -> bytes:
    """At most `max_points` points: steps split into equal-width buckets, each shown as its mean
    with the min and max beside it, so spikes survive the thinning. Full history if it fits."""
    total = count(s, run_id, key)
    if total <= max_points:
        return full(s, run_id, key, shape)
    lo, hi = s.execute(select(func.min(Metric.step), func.max(Metric.step))
                       .where(Metric.job_id == run_id, Metric.key == key)).one()
    width = max(1, -(-(hi - lo + 1) // max_points))
    bucket = ((Metric.step - lo) // width).label("bucket")
    rows = s.execute(
        select(bucket, func.min(Metric.step), func.max(Metric.timestamp), func.avg(Metric.value),
               func.min(Metric.value), func.max(Metric.value), func.count())
        .where(Metric.job_id == run_id, Metric.key == key)
        .group_by(bucket).order_by(bucket)
    ).all()
    doc: dict[str, Any] = {"key": key, "run_id": run_id, "total": total, "sampled": True,
                           "bucket_steps": width}
    names = ("step", "timestamp", "value", "min", "max", "count")
    if shape == "columns":
        doc.update({n: [r[i + 1] for r in rows] for i, n in enumerate(names)})
    else:
        doc["points"] = [dict(zip(names, r[1:], strict=True)) for r in rows]
    return orjson.dumps(doc)
