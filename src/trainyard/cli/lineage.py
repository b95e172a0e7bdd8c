"""`yard lineage MODEL@VERSION | JOB` prints the chain back to data and code; `yard rerun JOB`."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console

from trainyard.cli.errors import call, err
from trainyard.cli.watch import watch
from trainyard.client import Client

out = Console(soft_wrap=True, highlight=False)

ServerOpt = Annotated[str | None, typer.Option("--server", envvar="TRAINYARD_SERVER",
                                               help="Server URL (default http://127.0.0.1:8765).")]
KEY_PACKAGES = ("torch", "numpy", "scikit-learn", "trainyard")


def _values(d: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(d.items())) or "-"


def _run_lines(run: dict[str, Any], indent: str) -> list[str]:
    if not run["available"]:
        return [f"{indent}run {run['run']}  unavailable: not a run you may read"]
    code = run["code"]
    git = "no git"
    if code["git_commit"]:
        git = f"git {code['git_commit'][:12]}" + (" (dirty)" if code["git_dirty"] else " (clean)")
    lines = [f"run {run['run']}  [bold]{run['state']}[/]  name {run['name']}, team {run['team']}, "
             f"project {run['project']}",
             f"  code {code['digest'] or 'none'}  {git}"]
    ds = run["dataset"]
    if not ds:
        lines.append("  dataset none (the job named no snapshot)")
    elif not ds["available"]:
        lines.append(f"  dataset {ds['ref']}  unavailable: not a snapshot you may read")
    else:
        lines.append(f"  dataset {ds['ref']}  {ds['digest']}  ({ds['files']} files, {ds['bytes']:,} bytes)")
    lines.append(f"  params {_values(run['hyperparameters'])}")
    env = run["environment"]
    if env:
        pkgs = env["packages"]
        key = ", ".join(f"{p} {pkgs[p]}" for p in KEY_PACKAGES if p in pkgs)
        lines.append(f"  environment Python {env['python']} on {env['platform']}; {key} "
                     f"({len(pkgs)} packages recorded)")
    else:
        lines.append("  environment not recorded (never launched)")
    resumed = [a for a in run["started_from"] if a["step"] is not None]
    lines.append("  started from " + ("; ".join(f"attempt {a['attempt']}: step {a['step']}" for a in resumed)
                                      if resumed else "scratch (no checkpoint)"))
    kept = [c for c in run["checkpoints"] if c["state"] == "COMMITTED"]
    gone = len(run["checkpoints"]) - len(kept)
    steps = ", ".join(str(c["step"]) for c in kept) or "-"
    lines.append(f"  checkpoints produced {len(run['checkpoints'])}: kept steps {steps}"
                 + (f"; {gone} deleted by retention" if gone else ""))
    lines.append(f"  final metrics {_values(run['final_metrics'])}")
    if run["rerun_of"]:
        lines.append(f"  rerun of {run['rerun_of']}")
    return [indent + line for line in lines]


def lineage(
    ref: Annotated[str, typer.Argument(help="MODEL@VERSION (e.g. digits-classifier@v2 or @production) or a job.")],
    server_url: ServerOpt = None,
) -> None:
    """The chain behind a model version (or a run): checkpoint, run, code, dataset, params, environment."""
    with Client(server_url) as client:
        if "@" in ref:
            name, which = ref.rsplit("@", 1)
            doc = call(client.version_lineage, name, which)
            ev = doc["evaluation"]
            ck = doc["checkpoint"]
            out.print(f"[bold]{doc['ref']}[/]  aliases {', '.join(doc['aliases']) or '-'}  evaluation "
                      f"{ev['state']} {_values(ev['metrics'])}")
            out.print(f"  checkpoint step {ck['step']}  {ck['uri']}  {_values(ck['metrics'])}")
            lines = _run_lines(doc["run"], "  ")
        else:
            lines = _run_lines(call(client.run_lineage, ref), "")
    for line in lines:
        out.print(line)


def rerun(
    job_id: Annotated[str, typer.Argument(help="The job to run again.")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Watch the new job until it ends.")] = False,
    server_url: ServerOpt = None,
) -> None:
    """Submit an identical job from JOB's recorded inputs (spec, code archive, dataset); prints its id."""
    with Client(server_url) as client:
        job = call(client.rerun, job_id)
        print(job["id"], flush=True)
        err.print(f"rerun of {job_id}: {job['id']} {job['state']}; code {(job['code']['digest'] or 'none')[:19]}…, "
                  f"dataset {job['spec'].get('dataset') or 'none'}", highlight=False)
        if follow:
            raise typer.Exit(watch(client, job["id"]))
