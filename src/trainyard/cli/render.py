"""Rich renderings of jobs for the terminal."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

STATE_STYLE = {"QUEUED": "cyan", "STARTING": "yellow", "RUNNING": "green", "RESTARTING": "magenta",
               "SUCCEEDED": "bold green", "FAILED": "bold red", "CANCELLED": "dim"}


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    t = datetime.fromisoformat(value)
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def age(value: str | None) -> str:
    t = parse_time(value)
    if t is None:
        return "-"
    secs = (datetime.now(UTC) - t).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            return f"{secs / size:.0f}{unit}"
    return f"{max(secs, 0):.0f}s"


def state(value: str) -> Text:
    return Text(value, style=STATE_STYLE.get(value, ""))


def attempt_text(job: dict[str, Any]) -> str:
    if not job["attempt"]:
        return "-"
    if not job["restarts"]:
        return str(job["attempt"])
    return f"{job['attempt']} ({job['restarts']}/{job['max_restarts']} restarts)"


def jobs_table(jobs: list[dict[str, Any]]) -> Table:
    table = Table(box=None, header_style="bold")
    for col in ("ID", "NAME", "TEAM", "STATE", "ATTEMPT", "STEP", "AGE"):
        table.add_column(col)
    for j in jobs:
        table.add_row(j["id"], j["name"], j["team"], state(j["state"]), attempt_text(j),
                      "-" if j["step"] is None else str(j["step"]), age(j["created_at"]))
    return table


def format_metric(value: float) -> str:
    return f"{value:.4g}"


def status_view(job: dict[str, Any], events: list[dict[str, Any]] | None = None) -> Group:
    step = job["step"] if job["step"] is not None else "-"
    head = Text.assemble((job["id"], "bold"), "  ", state(job["state"]),
                         f"  attempt {attempt_text(job)}  step {step}")
    parts: list[Any] = [head, Text(job["reason"], style="dim")]
    if job.get("metrics"):
        parts.append(Text("metrics: " + "  ".join(
            f"{k}={format_metric(v['value'])}" for k, v in sorted(job["metrics"].items()))))
    workers = Table(title="workers", title_justify="left", box=None, header_style="bold")
    for col in ("RANK", "HOST", "PID", "STATE", "STEP", "LAST HEARTBEAT"):
        workers.add_column(col)
    for w in job.get("workers", []):
        state_txt = w["state"] if w["exit_code"] is None else f"{w['state']} ({w['exit_code']})"
        workers.add_row(str(w["rank"]), w["host"] or "-", str(w["pid"] or "-"), state_txt,
                        str(w["step"] if w["step"] is not None else "-"),
                        age(w["last_heartbeat"]) + " ago" if w["last_heartbeat"] else "-")
    parts.append(workers)
    ckpts = Table(title="checkpoints", title_justify="left", box=None, header_style="bold")
    for col in ("STEP", "ATTEMPT", "SIZE", "VERIFIED", "METRICS", "AGE"):
        ckpts.add_column(col)
    for c in job.get("checkpoints", []):
        ckpts.add_row(str(c["step"]), str(c["attempt"]), human_bytes(c["bytes"]),
                      "yes" if c["verified"] else "no",
                      " ".join(f"{k}={format_metric(v)}" for k, v in c["metrics"].items()),
                      age(c["created_at"]))
    parts.append(ckpts)
    if events is not None:
        ev = Table(title="events", title_justify="left", box=None, header_style="bold")
        for col in ("TIME", "KIND", "REASON"):
            ev.add_column(col)
        for e in events:
            ev.add_row(parse_time(e["time"]).strftime("%H:%M:%S"), e["kind"], e["reason"])
        parts.append(ev)
    return Group(*parts)


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"
