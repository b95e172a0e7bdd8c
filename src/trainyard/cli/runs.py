"""`yard runs`: find, inspect and compare runs; their metrics and artifacts.

    yard runs list -e lr-sweep -f "val_acc > 0.95 and params.lr < 0.01" --sort "metrics.val_acc desc"
    yard runs show RUN
    yard runs compare A B C
    yard runs metric RUN val_acc [--max-points 200]
    yard runs upload RUN model.pt [--as model/final.pt] / download RUN model/final.pt
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table
from rich.text import Text

from trainyard.cli import render
from trainyard.cli.errors import call, err, fail
from trainyard.client import Client

app = typer.Typer(no_args_is_help=True, help="Runs: every job's tracking record, and any script's "
                  "that called trainyard.init() against a server. Search, compare, metrics, artifacts.")
out = Console()

ServerOpt = Annotated[str | None, typer.Option("--server", envvar="TRAINYARD_SERVER",
                                               help="Server URL (default http://127.0.0.1:8765).")]
MAX_COLUMNS = 5


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _keys(runs: list[dict[str, Any]], field: str, wanted: list[str] | None) -> list[str]:
    if wanted:
        return wanted
    keys = sorted({k for r in runs for k in r[field] if not k.startswith("system/")})
    return keys[:MAX_COLUMNS]


def runs_table(runs: list[dict[str, Any]], params: list[str] | None = None,
               metrics: list[str] | None = None) -> Table:
    pkeys, mkeys = _keys(runs, "params", params), _keys(runs, "metrics", metrics)
    table = Table(box=None, header_style="bold")
    for name in ("RUN", "EXPERIMENT", "STATE", "AGE"):
        table.add_column(name)
    for k in pkeys:
        table.add_column(f"params.{k}", style="cyan")
    for k in mkeys:
        table.add_column(k, style="magenta", justify="right")
    for r in runs:
        table.add_row(r["id"], r["experiment"] or "-", render.state(r["state"]),
                      render.age(r["created_at"]),
                      *[r["params"].get(k, "-") for k in pkeys],
                      *[_number((r["metrics"].get(k) or {}).get("value")) for k in mkeys])
    return table


@app.command("list")
def list_runs(
    experiment: Annotated[str | None, typer.Option("--experiment", "-e",
                                                   help="Only this experiment.")] = None,
    project: Annotated[str | None, typer.Option("--project", "-p", help="Only this project.")] = None,
    team: Annotated[str | None, typer.Option("--team", "-t", help="Only this team's runs.")] = None,
    filter: Annotated[str | None, typer.Option("--filter", "-f",
                                               help="e.g. \"val_acc > 0.95 and params.lr < 0.01\"")] = None,
    sort: Annotated[list[str] | None, typer.Option(
        "--sort", "-s", help="e.g. \"metrics.val_acc desc\"; repeat for ties")] = None,
    limit: Annotated[int, typer.Option(help="Runs per page.")] = 50,
    all_pages: Annotated[bool, typer.Option("--all", help="Every matching run, not one page.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False,
    server_url: ServerOpt = None,
) -> None:
    """Search the runs of your teams: newest first unless --sort says otherwise."""
    query = {"experiment": experiment, "team": team, "project": project, "filter": filter, "order_by": sort or [],
             "limit": limit}
    with Client(server_url) as client:
        if all_pages:
            runs = call(lambda: list(client.iter_runs(**query)))
            token = None
        else:
            page = call(client.search_runs, **query)
            runs, token = page["items"], page["next_page_token"]
    if as_json:
        for r in runs:
            print(json.dumps(r))
        return
    out.print(runs_table(runs))
    if token:
        err.print("[dim]more runs match; use --all or --limit to see them[/]")


@app.command()
def show(run_id: str, server_url: ServerOpt = None) -> None:
    """A run's state, params, tags, latest metrics and artifacts."""
    with Client(server_url) as client:
        run = call(client.run, run_id)
        artifacts = call(client.artifacts, run_id)
    out.print(Text.assemble((run["id"], "bold"), "  ", render.state(run["state"]),
                            f"  {run['team']}/{run['project']}/{run['experiment'] or '-'}  ({run['source']} run, "
                            f"{render.age(run['created_at'])} ago)"))
    for title, rows in (("params", run["params"]), ("tags", run["tags"]),
                        ("metrics", {k: f"{_number(v['value'])}  (step {v['step']})"
                                     for k, v in run["metrics"].items()}),
                        ("artifacts", {a["path"]: f"{a['bytes']:,} bytes  sha256 {a['sha256'][:12]}…"
                                       for a in artifacts})):
        if rows:
            table = Table(title=title, title_justify="left", box=None, show_header=False)
            for k, v in rows.items():
                table.add_row(k, str(v))
            out.print(table)


@app.command()
def compare(run_ids: Annotated[list[str], typer.Argument(help="Two or more runs.")],
            server_url: ServerOpt = None) -> None:
    """Runs side by side: every param and latest metric; rows that differ are highlighted."""
    with Client(server_url) as client:
        table_data = call(client.compare_runs, run_ids)
    table = Table(box=None, header_style="bold")
    table.add_column("")
    for r in table_data["runs"]:
        table.add_column(r["id"], justify="right")
    table.add_row("state", *[render.state(r["state"]) for r in table_data["runs"]])
    for section, rows in (("params", table_data["params"]), ("metrics", table_data["metrics"])):
        for key, values in rows.items():
            differs = len({json.dumps(v) for v in values}) > 1
            table.add_row(Text(f"{section}.{key}", style="bold yellow" if differs else ""),
                          *[_number(v) for v in values])
    out.print(table)


@app.command()
def metric(
    run_id: str, key: str,
    max_points: Annotated[int | None, typer.Option(help="Down-sample to at most this many points.")] = None,
    server_url: ServerOpt = None,
) -> None:
    """Print a metric's history as CSV (step,timestamp,value), down-sampled if asked."""
    with Client(server_url) as client:
        cols = call(client.metric_columns, run_id, key, max_points)
    extra = [n for n in ("min", "max", "count") if n in cols]
    print(",".join(["step", "timestamp", "value", *extra]))
    for row in zip(*(cols[n] for n in ("step", "timestamp", "value", *extra)), strict=True):
        print(",".join("" if v is None else str(v) for v in row))
    if cols["sampled"]:
        err.print(f"[dim]{cols['total']:,} points shown as {len(cols['step'])} buckets of "
                  f"{cols['bucket_steps']} steps (value = mean)[/]")


@app.command()
def end(
    run_id: str,
    state: Annotated[str, typer.Option(help="SUCCEEDED, FAILED or CANCELLED.")] = "SUCCEEDED",
    reason: Annotated[str | None, typer.Option(help="Why, for the run's events.")] = None,
    server_url: ServerOpt = None,
) -> None:
    """End a client run (a job's run ends with its job)."""
    with Client(server_url) as client:
        run = call(client.end_run, run_id, state.upper(), reason)
    err.print(f"{run['id']}: {run['state']}", highlight=False)


@app.command()
def artifacts(run_id: str, server_url: ServerOpt = None) -> None:
    """List a run's artifacts: path, size, checksum."""
    with Client(server_url) as client:
        items = call(client.artifacts, run_id)
    table = Table(box=None, header_style="bold")
    for name in ("PATH", "BYTES", "SHA256", "URI"):
        table.add_column(name)
    for a in items:
        table.add_row(a["path"], f"{a['bytes']:,}", a["sha256"][:16] + "…", a["uri"])
    out.print(table)


def _progress() -> Progress:
    return Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                    TransferSpeedColumn(), console=err, transient=True)


@app.command()
def upload(
    run_id: str, file: Path,
    as_path: Annotated[str | None, typer.Option("--as",
                                                help="Artifact path (default: the file name).")] = None,
    server_url: ServerOpt = None,
) -> None:
    """Stream a file into the run's artifacts."""
    if not file.is_file():
        fail(f"{file} is not a file")
    path = as_path or file.name
    with Client(server_url) as client, _progress() as bar:
        task = bar.add_task(f"upload {path}", total=file.stat().st_size)
        meta = call(client.upload_artifact, run_id, path, file,
                     progress=lambda n: bar.advance(task, n))
    err.print(f"{run_id}/{meta['path']}: {meta['bytes']:,} bytes, sha256 {meta['sha256']}", highlight=False)


@app.command()
def download(
    run_id: str, path: str,
    output: Annotated[Path | None, typer.Option("--output", "-o",
                                                help="Where to write (default: ./NAME).")] = None,
    server_url: ServerOpt = None,
) -> None:
    """Stream one of the run's artifacts to a file."""
    dest = output or Path(path.rsplit("/", 1)[-1])
    with Client(server_url) as client:
        size = next((a["bytes"] for a in call(client.artifacts, run_id) if a["path"] == path), None)
        with _progress() as bar:
            task = bar.add_task(f"download {path}", total=size)
            n = call(client.download_artifact, run_id, path, dest, progress=lambda k: bar.advance(task, k))
    err.print(f"{dest}: {n:,} bytes", highlight=False)

