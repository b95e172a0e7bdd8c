"""`yard sweep`: start a hyperparameter sweep, watch its trials, print its best.

`yard sweep FILE` is short for `yard sweep submit FILE`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from trainyard.cli import render
from trainyard.cli.code import upload_code
from trainyard.cli.errors import call, err, fail
from trainyard.client import Client
from trainyard.spec import SpecError, load_spec_file
from trainyard.tuning.spec import parse_sweep_spec

TRIAL_STYLE = {"RUNNING": "green", "COMPLETE": "bold green", "PRUNED": "yellow", "FAILED": "bold red",
               "CANCELLED": "dim"}
SWEEP_ENDED = ("SUCCEEDED", "FAILED", "CANCELLED")
EVENTS_SHOWN = 12


class _FileOrCommand(TyperGroup):
    """Reads `yard sweep sweep.yaml` as `yard sweep submit sweep.yaml`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["submit", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(cls=_FileOrCommand, no_args_is_help=True, help=(
    "Hyperparameter sweeps: `yard sweep submit sweep.yaml --follow`, then `yard sweep status|best SWEEP`."))
out = Console()

ServerOpt = Annotated[str | None, typer.Option("--server", envvar="TRAINYARD_SERVER",
                                               help="Server URL (default http://127.0.0.1:8765).")]


def read_sweep_file(path: Path) -> tuple[dict[str, Any], Path]:
    """The sweep spec with its trial template inlined, and the directory the template's code is under."""
    data = load_spec_file(path)
    job = data.get("job")
    if isinstance(job, str):
        job_path = path.parent / job
        try:
            job_data = load_spec_file(job_path)
        except SpecError as exc:
            raise SpecError([{"field": "job", "message": e["message"]} for e in exc.errors]) from None
        return {**data, "job": job_data}, job_path.parent
    return data, path.parent


@app.command()
def submit(
    spec_file: Annotated[Path, typer.Argument(help="A sweep spec, YAML or JSON.")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Live table of trials.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the sweep id.")] = False,
    server_url: ServerOpt = None,
) -> None:
    """Snapshot the trials' code, start the sweep, and print its id on the first line."""
    try:
        data, base = read_sweep_file(spec_file)
        spec = parse_sweep_spec(data)
    except SpecError as exc:
        fail(str(exc))
    with Client(server_url) as client:
        code = upload_code(client, base / spec.template.code, field="job.code")
        sweep = call(client.submit_sweep, data, code)
        print(sweep["id"], flush=True)
        if not quiet:
            err.print(f"sweep {sweep['name']}: {sweep['max_trials']} trials, {sweep['parallelism']} at a "
                      f"time, sampler {sweep['sampler']}, early stopping {sweep['early_stopping']}",
                      highlight=False)
        if follow:
            raise typer.Exit(follow_sweep(client, sweep["id"]))


def _value(v: float | None) -> str:
    return "-" if v is None else render.format_metric(v)


def trials_table(trials: list[dict[str, Any]], metric: str) -> Table:
    names = list(dict.fromkeys(k for t in trials for k in t["params"]))
    table = Table(box=None, header_style="bold")
    for col in ("#", "STATE", *[n.upper() for n in names], metric.upper(), "REACHED", "PRUNED AT", "JOB"):
        table.add_column(col)
    for t in trials:
        state = t["state"] if t["state"] != "RUNNING" else t["job_state"]
        params = [_value(v) if isinstance(v, float) else str(v) for v in (t["params"].get(n) for n in names)]
        last = t["metrics"].get(metric) if t["value"] is None else t["value"]
        table.add_row(str(t["number"]), Text(state, style=TRIAL_STYLE.get(t["state"], "")), *params,
                      _value(last), "-" if t["resource"] is None else str(t["resource"]),
                      "-" if t["pruned_at"] is None else str(t["pruned_at"]), t["job_id"])
    return table


def headline(sweep: dict[str, Any]) -> Text:
    counts = ", ".join(f"{n} {s.lower()}" for s, n in sorted(sweep["trials"].items())) or "no trials yet"
    done = sum(sweep["trials"].values())
    text = Text.assemble((sweep["id"], "bold"), "  ", render.state(sweep["state"]),
                         f"  {done}/{sweep['max_trials']} trials ({counts})  "
                         f"{sweep['goal']} {sweep['metric']}")
    best = sweep.get("best")
    if best:
        text.append(f"\nbest so far: trial {best['number']} {sweep['metric']}={_value(best['value'])} "
                    f"{describe_params(best['params'])}", style="cyan")
    return text


def describe_params(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={_value(v) if isinstance(v, float) else v}" for k, v in params.items())


def sweep_view(sweep: dict[str, Any], trials: list[dict[str, Any]]) -> Group:
    return Group(headline(sweep), Text(sweep["reason"], style="dim"), trials_table(trials, sweep["metric"]))


def follow_sweep(client: Client, sweep_id: str) -> int:
    """Live table of trials until the sweep ends; 0 iff it succeeded."""
    with Live(console=err, refresh_per_second=2, transient=True) as live:
        while True:
            sweep = call(client.sweep, sweep_id)
            trials = call(client.sweep_trials, sweep_id)
            live.update(sweep_view(sweep, trials))
            if sweep["state"] in SWEEP_ENDED:
                break
            time.sleep(1.0)
    err.print(sweep_view(sweep, trials))
    return 0 if sweep["state"] == "SUCCEEDED" else 1


@app.command()
def watch(sweep_id: str, server_url: ServerOpt = None) -> None:
    """Live table of a sweep's trials until it ends; exits 0 iff it succeeded."""
    with Client(server_url) as client:
        raise typer.Exit(follow_sweep(client, sweep_id))


@app.command()
def status(sweep_id: str, server_url: ServerOpt = None) -> None:
    """A sweep's trials (params, state, metric, how far each got, where pruned) and its last events."""
    with Client(server_url) as client:
        sweep = call(client.sweep, sweep_id)
        trials = call(client.sweep_trials, sweep_id)
        events = call(client.sweep_events, sweep_id)
    out.print(sweep_view(sweep, trials))
    table = Table(title="events", title_justify="left", box=None, header_style="bold")
    for col in ("TIME", "KIND", "REASON"):
        table.add_column(col)
    for e in events[-EVENTS_SHOWN:]:
        table.add_row(render.parse_time(e["time"]).strftime("%H:%M:%S"), e["kind"], e["reason"])
    out.print(table)


@app.command()
def best(sweep_id: str, server_url: ServerOpt = None) -> None:
    """The best completed trial: its metric, parameters, job and last metrics."""
    with Client(server_url) as client:
        sweep = call(client.sweep, sweep_id)
    trial = sweep.get("best")
    if trial is None:
        fail(f"sweep {sweep_id} has no completed trial yet ({sweep['state']}); "
             f"see `yard sweep status {sweep_id}`", code=1)
        return
    out.print(Text.assemble(("best trial ", "bold"), (str(trial["number"]), "bold"),
                            f" of {sweep_id}: {sweep['metric']}={_value(trial['value'])}",
                            f"  job {trial['job_id']}"))
    out.print("params:  " + describe_params(trial["params"]), highlight=False)
    metrics = {k: v for k, v in trial["metrics"].items() if v is not None}
    out.print("metrics: " + " ".join(f"{k}={render.format_metric(v)}" for k, v in sorted(metrics.items())),
              highlight=False)


@app.command("list")
def list_cmd(server_url: ServerOpt = None) -> None:
    """Sweeps, newest first: id, name, state, trials, best."""
    with Client(server_url) as client:
        items = call(client.sweeps)
    table = Table(box=None, header_style="bold")
    for col in ("ID", "NAME", "STATE", "TRIALS", "SAMPLER", "AGE"):
        table.add_column(col)
    for w in items:
        table.add_row(w["id"], w["name"], render.state(w["state"]),
                      f"{sum(w['trials'].values())}/{w['max_trials']}", w["sampler"],
                      render.age(w["created_at"]))
    out.print(table)


@app.command()
def cancel(sweep_id: str, server_url: ServerOpt = None) -> None:
    """Stop a sweep and every trial it is running."""
    with Client(server_url) as client:
        sweep = call(client.cancel_sweep, sweep_id)
    err.print(f"{sweep['id']}: cancel requested; stopping its running trials", highlight=False)
