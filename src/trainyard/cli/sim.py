"""`yard sim`: replay a trace through the scheduling policies on a modelled cluster.

Register on the main app with `app.command("sim")(sim)`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from trainyard.sim.cluster import ClusterShape, equal_teams
from trainyard.sim.compare import plot, run_policies
from trainyard.sim.engine import SimOptions
from trainyard.sim.metrics import summarize
from trainyard.sim.trace import TraceError, compression_for_load, load_trace, scale

JSON_FIELDS = ("policy", "avg_jct_s", "p50_jct_s", "p99_jct_s", "p99_queue_s", "utilization",
               "makespan_s", "preemptions", "jain_index", "cycle_p99_ms", "decisions_per_s")


def sim(
    trace: Annotated[Path, typer.Argument(help="CSV trace: ours, or Philly's columns.")] = Path(
        "../shared/traces/philly.csv"),
    nodes: Annotated[int, typer.Option(help="Nodes in the modelled cluster.")] = 12_500,
    gpus_per_node: Annotated[int, typer.Option(help="GPUs on each node.")] = 8,
    policy: Annotated[str, typer.Option(help="fifo, backfill or trainyard.")] = "trainyard",
    compare: Annotated[str | None, typer.Option(
        help="Comma-separated policies to run on the same trace, e.g. fifo,backfill,trainyard.")] = None,
    replicate: Annotated[int, typer.Option(help="Copies of every trace job.")] = 1,
    compress: Annotated[float | None, typer.Option(help="Divide submit times by this.")] = None,
    load: Annotated[float | None, typer.Option(
        help="Pick --compress so the trace offers this × the cluster's GPU-time.")] = None,
    estimates: Annotated[bool, typer.Option(
        help="Use true durations as expected_duration where the trace gives none.")] = True,
    preemptible: Annotated[bool, typer.Option(
        help="Treat rows that do not say as preemptible (they checkpoint).")] = True,
    spot_fraction: Annotated[float, typer.Option(help="Fraction of nodes in the spot pool.")] = 0.0,
    spot_reclaims_per_hour: Annotated[float, typer.Option(help="Random spot reclaims per hour.")] = 0.0,
    checkpoint_every: Annotated[float, typer.Option(help="Seconds between a job's checkpoints.")] = 1800.0,
    cycle_interval: Annotated[float, typer.Option(help="Simulated seconds between cycles.")] = 30.0,
    limit: Annotated[int | None, typer.Option(help="Replay only the first N jobs.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per policy per line.")] = False,
    plot_path: Annotated[Path | None, typer.Option("--plot", help="Write the PNG here.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for replication jitter and spot reclaims.")] = 0,
) -> None:
    """Replay a trace through the scheduler and report JCT, queueing, utilization and fairness."""
    err = Console(stderr=True)
    try:
        jobs = load_trace(trace, estimates=estimates, preemptible=preemptible)
    except TraceError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    if limit is not None:
        jobs = jobs[:limit]
    shape = ClusterShape(nodes, gpus_per_node, spot_fraction)
    if load is not None:
        compress = compression_for_load(jobs, shape.total_gpus, load, replicate)
    jobs = scale(jobs, replicate=replicate, compress=compress or 1.0, seed=seed)
    teams = equal_teams({j.team for j in jobs}, shape.total_gpus)
    policies = [p.strip() for p in (compare or policy).split(",") if p.strip()]
    options = SimOptions(cycle_interval_s=cycle_interval, checkpoint_every_s=checkpoint_every,
                         spot_reclaims_per_hour=spot_reclaims_per_hour, seed=seed)
    columns = (TextColumn("{task.description}"), BarColumn(),
               TextColumn("{task.completed}/{task.total} jobs"), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as progress:
        tasks = {p: progress.add_task(f"replaying {p}", total=len(jobs)) for p in policies}
        try:
            results = run_policies(jobs, shape, policies, teams, options,
                                   lambda p, n: progress.update(tasks[p], completed=n))
        except ValueError as exc:
            err.print(f"[bold red]error:[/] {exc}", highlight=False)
            raise typer.Exit(2) from None
    summaries = [summarize(r) for r in results]
    if as_json:
        for s in summaries:
            print(json.dumps({k: s[k] for k in JSON_FIELDS}))
    else:
        _table(summaries, f"{len(jobs):,} jobs on {nodes:,} nodes × {gpus_per_node} GPUs")
    if plot_path is not None or (compare and not as_json):
        written = plot(results, plot_path or Path("yard-sim.png"))
        err.print(f"plot written to {written}")


def _table(summaries: list[dict[str, object]], title: str) -> None:
    table = Table(title=title)
    columns = [("policy", "policy", "{}"), ("avg JCT s", "avg_jct_s", "{:,.0f}"),
               ("p50 JCT s", "p50_jct_s", "{:,.0f}"), ("p99 JCT s", "p99_jct_s", "{:,.0f}"),
               ("p50 queue s", "p50_queue_s", "{:,.0f}"), ("p99 queue s", "p99_queue_s", "{:,.0f}"),
               ("util", "utilization", "{:.1%}"), ("makespan s", "makespan_s", "{:,.0f}"),
               ("preempt", "preemptions", "{:,}"), ("GPU-h lost", "gpu_hours_lost", "{:,.1f}"),
               ("Jain", "jain_index", "{:.3f}"), ("cycle p50 ms", "cycle_p50_ms", "{:.2f}"),
               ("cycle p99 ms", "cycle_p99_ms", "{:.1f}"), ("decisions/s", "decisions_per_s", "{:,.0f}")]
    for header, _, _ in columns:
        table.add_column(header, justify="left" if header == "policy" else "right")
    for s in summaries:
        table.add_row(*(fmt.format(s[key]) for _, key, fmt in columns))
    console = Console()
    if not console.is_terminal:
        console = Console(width=180)  # a pipe or a file: print every column in full
    console.print(table)
    for s in summaries:
        below = s["teams_below_90pct"]
        if isinstance(below, list) and below:
            console.print(f"{s['policy']}: teams below 90 % of min(demand, entitlement): "
                            f"{', '.join(below)}")
