"""Following a job until it ends: `yard watch`, and `--follow` on the commands that start one."""

from __future__ import annotations

import time

from rich.live import Live

from trainyard.cli import render
from trainyard.cli.errors import call, err
from trainyard.client import Client


def watch(client: Client, job_id: str) -> int:
    """Live status and events until the job ends; exit code 0 iff it succeeded."""
    seen = 0
    with Live(console=err, refresh_per_second=4, transient=True) as live:
        while True:
            job = call(client.job, job_id)
            events = call(client.events, job_id)
            for e in events[seen:]:
                live.console.print(f"[dim]{render.parse_time(e['time']):%H:%M:%S}[/] "
                                   f"[bold]{e['kind']}[/] {e['reason']}", highlight=False)
            seen = len(events)
            live.update(render.status_view(job))
            if job["state"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
                break
            time.sleep(1.0)
    err.print(render.status_view(job))
    return 0 if job["state"] == "SUCCEEDED" else 1
