"""Traces: the CSV format `yard sim` reads, the Philly adapter, and load scaling.

Our CSV has a header; columns submit_time (seconds or an ISO timestamp),
duration (s), num_gpus, and optionally team, priority, expected_duration,
preemptible. Philly's (timestamp,duration,num_gpus,gpu_time,cluster) is read
with the cluster as the team.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

REQUIRED = ("submit_time", "duration", "num_gpus")
PHILLY = ("timestamp", "duration", "num_gpus", "cluster")
TRUE = {"1", "true", "yes", "y", "t"}


class TraceError(ValueError):
    """A trace that cannot be read; the message names the row and the column."""


@dataclass(frozen=True, slots=True)
class TraceJob:
    id: str
    submit_time: float
    duration: float
    gpus: int
    team: str = "default"
    priority: str = "normal"
    expected_duration: float | None = None
    preemptible: bool = False


def _time(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return datetime.fromisoformat(text.strip()).timestamp()


def load_trace(path: str | Path, *, estimates: bool = False,
               preemptible: bool | None = None) -> list[TraceJob]:
    """Read a trace, recognising Philly's columns. Submit times start at 0.

    `estimates`: when a row gives no expected_duration, use its true duration (a
    perfect user estimate, as simulations of Slurm's backfill usually assume).
    `preemptible`: the default for rows that do not say (Philly rows never do).
    """
    p = Path(path)
    try:
        handle = p.open(newline="")
    except OSError as exc:
        raise TraceError(f"cannot read trace {p}: {exc.strerror}") from None
    with handle:
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or ())
        philly = set(PHILLY) <= columns and "submit_time" not in columns
        missing = [c for c in (PHILLY if philly else REQUIRED) if c not in columns]
        if missing:
            raise TraceError(f"{p}: missing column(s) {', '.join(missing)}; need "
                             f"{', '.join(REQUIRED)} (or Philly's {', '.join(PHILLY)})")
        jobs = [_row(p, i, row, philly, estimates, preemptible) for i, row in enumerate(reader, 2)]
    if not jobs:
        return []
    jobs.sort(key=lambda j: j.submit_time)
    t0 = jobs[0].submit_time
    return [replace(j, submit_time=j.submit_time - t0) for j in jobs]


def _row(p: Path, line: int, row: dict[str, str], philly: bool, estimates: bool,
         preemptible: bool | None) -> TraceJob:
    try:
        submit = _time(row["timestamp" if philly else "submit_time"])
        duration = float(row["duration"])
        gpus = int(float(row["num_gpus"]))
        expected_text = (row.get("expected_duration") or "").strip()
        expected = float(expected_text) if expected_text else (duration if estimates else None)
        flag = (row.get("preemptible") or "").strip().lower()
    except (ValueError, TypeError) as exc:
        raise TraceError(f"{p} line {line}: {exc}") from None
    if duration < 0 or gpus < 0:
        raise TraceError(f"{p} line {line}: duration and num_gpus must be ≥ 0")
    team = (row.get("cluster") if philly else row.get("team")) or "default"
    return TraceJob(
        id=f"j{line - 1}",
        submit_time=submit,
        duration=duration,
        gpus=gpus,
        team=team.strip() or "default",
        priority=(row.get("priority") or "normal").strip() or "normal",
        expected_duration=expected,
        preemptible=(flag in TRUE) if flag else bool(preemptible),
    )


def offered_gpu_seconds(jobs: list[TraceJob]) -> float:
    return sum(j.duration * j.gpus for j in jobs)


def scale(jobs: list[TraceJob], *, replicate: int = 1, compress: float = 1.0,
          seed: int = 0) -> list[TraceJob]:
    """`replicate` copies of every job (spread over the gap to the next arrival), with
    submit times divided by `compress`; durations are kept."""
    if replicate <= 1 and compress == 1.0:
        return list(jobs)
    rng = random.Random(seed)
    span = (jobs[-1].submit_time if jobs else 0.0) / compress
    gap = span / max(1, len(jobs))
    out = []
    for j in jobs:
        base = j.submit_time / compress
        for i in range(max(1, replicate)):
            t = base + (rng.uniform(0, gap) if i else 0.0)
            out.append(replace(j, id=f"{j.id}.{i}" if replicate > 1 else j.id, submit_time=t))
    out.sort(key=lambda j: j.submit_time)
    return out


def compression_for_load(jobs: list[TraceJob], total_gpus: int, load: float, replicate: int = 1) -> float:
    """The compression at which `replicate` copies offer `load` × the cluster's GPU-seconds
    over the (compressed) submit window."""
    span = jobs[-1].submit_time if jobs else 0.0
    work = offered_gpu_seconds(jobs) * max(1, replicate)
    if span <= 0 or work <= 0:
        return 1.0
    return max(1.0, load * total_gpus * span / work)
