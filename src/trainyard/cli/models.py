"""`yard models`: the registry. Declare a model, register versions from runs, move aliases.

    yard models create examples/digits/model.yaml          # the model and its evaluation gate
    yard models register JOB --name digits-classifier [--checkpoint best]
    yard models show digits-classifier                     # versions, evaluations, aliases
    yard models promote digits-classifier@v2 [--alias production] --reason "beats v1"
    yard models rollback digits-classifier [--alias production] --reason "regression"
    yard models history digits-classifier [--alias production]

"Who" in the history is $USER (sent as X-Trainyard-User); there is no authentication yet.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from trainyard.cli import render
from trainyard.cli.code import upload_code
from trainyard.cli.errors import call, err, fail
from trainyard.client import Client
from trainyard.spec import SpecError, load_spec_file

app = typer.Typer(no_args_is_help=True, help="Model registry: versions from runs' checkpoints, aliases "
                  "(staging, production, ...) with history, evaluation gates, rollback.")
out = Console()

ServerOpt = Annotated[str | None, typer.Option("--server", envvar="TRAINYARD_SERVER",
                                               help="Server URL (default http://127.0.0.1:8765).")]
EVAL_STYLE = {"PASSED": "bold green", "FAILED": "bold red", "RUNNING": "yellow", "PENDING": "cyan", "NONE": "dim"}


def split_ref(ref: str) -> tuple[str, str]:
    """NAME@vN or NAME@ALIAS -> (name, which)."""
    if "@" not in ref:
        fail(f"{ref!r} names no version; write NAME@vN or NAME@ALIAS, e.g. digits-classifier@v2")
    name, which = ref.rsplit("@", 1)
    return name, which


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else "-" if value is None else str(value)


def _metrics(metrics: dict[str, Any], keys: int = 3) -> str:
    shown = [f"{k}={_number(v)}" for k, v in sorted(metrics.items()) if not k.startswith("system/")]
    return ", ".join(shown[:keys]) or "-"


@app.command()
def create(
    model_file: Annotated[Path, typer.Argument(help="A model.yaml: name, project, description, evaluation.")],
    server_url: ServerOpt = None,
) -> None:
    """Declare a model (or change its description and evaluation); snapshots the evaluation's code."""
    try:
        data = load_spec_file(model_file)
    except SpecError as exc:
        fail(str(exc))
    code = None
    evaluation = data.get("evaluation")
    with Client(server_url) as client:
        if isinstance(evaluation, dict):
            code_dir = model_file.parent / str(evaluation.get("code", "."))
            code = upload_code(client, code_dir, field="evaluation.code")
        model = call(client.declare_model, data, code)
    gate = model["evaluation"]
    print(model["name"], flush=True)
    err.print(f"model {model['name']} (project {model['project']}): " + (
        f"evaluation {' '.join(gate['entrypoint'])} on {gate['dataset']}, rule {gate['rule']!r}, gating "
        f"{', '.join(gate['gates'])}" if gate else "no evaluation; no alias is gated"), highlight=False)


def _wait_for_evaluation(client: Client, name: str, version: int, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    with err.status(f"evaluating {name}@v{version}") as status:
        while True:
            v = call(client.model_version, name, version)
            ev = v["evaluation"]
            if ev["state"] not in ("PENDING", "RUNNING") or time.monotonic() > deadline:
                return v
            status.update(f"evaluating {name}@v{version}: {ev['state'].lower()}"
                          + (f" (job {ev['job_id']})" if ev["job_id"] else ""))
            time.sleep(1.0)


@app.command()
def register(
    run_id: Annotated[str, typer.Argument(help="The job (run) whose checkpoint becomes the version.")],
    name: Annotated[str, typer.Option("--name", "-n", help="The model.")],
    checkpoint: Annotated[str, typer.Option(help="best (by the job's keep_best metric), latest, or a step.")] = "best",
    description: Annotated[str, typer.Option(help="What this version is.")] = "",
    tag: Annotated[list[str] | None, typer.Option("--tag", help="KEY=VALUE; repeat for more.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the evaluation and print its verdict.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to --wait at most.")] = 1800,
    server_url: ServerOpt = None,
) -> None:
    """Register a version from a run's checkpoint; its evaluation (if the model declares one) starts."""
    tags = _tags(tag)
    with Client(server_url) as client:
        v = call(client.register_model_version, name, run_id, checkpoint, description, tags)
        print(v["ref"], flush=True)
        err.print(f"registered {v['ref']} from run {run_id}, checkpoint step {v['checkpoint_step']} "
                  f"({_metrics(v['checkpoint_metrics'])}); evaluation {v['evaluation']['state']}", highlight=False)
        if wait and v["evaluation"]["state"] in ("PENDING", "RUNNING"):
            v = _wait_for_evaluation(client, name, v["version"], timeout)
            ev = v["evaluation"]
            err.print(Text.assemble("evaluation ", Text(ev["state"], EVAL_STYLE.get(ev["state"], "")),
                                    f": {ev['reason']}"))
            if ev["state"] != "PASSED":
                raise typer.Exit(1)


def _tags(pairs: list[str] | None) -> dict[str, str]:
    tags = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            fail(f"--tag {pair!r}: write KEY=VALUE")
        tags[key] = value
    return tags


@app.command("list")
def list_models(
    project: Annotated[str | None, typer.Option("--project", "-p", help="Only this project's.")] = None,
    server_url: ServerOpt = None,
) -> None:
    """Models with their latest version and aliases."""
    with Client(server_url) as client:
        items = call(client.models, project)
    table = Table(box=None, header_style="bold")
    for col in ("MODEL", "PROJECT", "LATEST", "ALIASES", "GATE", "AGE"):
        table.add_column(col)
    for m in items:
        aliases = ", ".join(f"{a}→v{v}" for a, v in m["aliases"].items()) or "-"
        gate = m["evaluation"]["rule"] if m["evaluation"] else "-"
        table.add_row(m["name"], m["project"], f"v{m['latest_version']}" if m["latest_version"] else "-",
                      aliases, gate, render.age(m["created_at"]))
    out.print(table)


@app.command()
def show(
    ref: Annotated[str, typer.Argument(help="NAME (all versions) or NAME@vN / NAME@ALIAS (one).")],
    server_url: ServerOpt = None,
) -> None:
    """A model's versions with their evaluations and aliases, or one version in full."""
    with Client(server_url) as client:
        if "@" in ref:
            name, which = split_ref(ref)
            v = call(client.model_version, name, which)
            _show_version(v)
            return
        m = call(client.model, ref)
    out.print(Text.assemble((m["name"], "bold"), f"  project {m['project']}  ",
                            f"gate: {m['evaluation']['rule']!r} on {', '.join(m['evaluation']['gates'])}"
                            if m["evaluation"] else "no evaluation"))
    if m["description"]:
        out.print(m["description"])
    table = Table(box=None, header_style="bold")
    for col in ("VERSION", "ALIASES", "RUN", "STEP", "CHECKPOINT METRICS", "EVALUATION", "EVAL METRICS", "BY", "AGE"):
        table.add_column(col)
    for v in m["versions"]:
        ev = v["evaluation"]
        table.add_row(f"v{v['version']}", ", ".join(v["aliases"]) or "-", v["run_id"], str(v["checkpoint_step"]),
                      _metrics(v["checkpoint_metrics"]), Text(ev["state"], EVAL_STYLE.get(ev["state"], "")),
                      _metrics(ev["metrics"]), v["created_by"], render.age(v["created_at"]))
    out.print(table)


def _show_version(v: dict[str, Any]) -> None:
    ev = v["evaluation"]
    out.print(Text.assemble((v["ref"], "bold"), f"  aliases: {', '.join(v['aliases']) or '-'}  by {v['created_by']}"))
    rows = {"run": v["run_id"], "checkpoint": f"step {v['checkpoint_step']}  {v['checkpoint_uri']}",
            "checkpoint metrics": _metrics(v["checkpoint_metrics"], 10), "description": v["description"] or "-",
            "tags": ", ".join(f"{k}={val}" for k, val in v["tags"].items()) or "-",
            "evaluation": Text.assemble(Text(ev["state"], EVAL_STYLE.get(ev["state"], "")),
                                        f"  job {ev['job_id'] or '-'}"),
            "eval metrics": _metrics(ev["metrics"], 10), "eval reason": ev["reason"]}
    table = Table(box=None, show_header=False)
    for k, val in rows.items():
        table.add_row(Text(k, style="bold"), val)
    out.print(table)


@app.command()
def promote(
    ref: Annotated[str, typer.Argument(help="NAME@vN: the version the alias should point to.")],
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why, for the alias's history.")],
    alias: Annotated[str, typer.Option("--alias", "-a", help="Which alias to move.")] = "production",
    server_url: ServerOpt = None,
) -> None:
    """Move an alias to a version. A gated alias refuses a version that has not passed, with the reason."""
    name, which = split_ref(ref)
    with Client(server_url) as client:
        version = call(client.model_version, name, which)["version"]
        v = call(client.move_alias, name, alias, version, reason)
    err.print(f"{name}@{alias} → v{v['version']}", highlight=False)


@app.command()
def rollback(
    name: Annotated[str, typer.Argument(help="The model.")],
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why, for the alias's history.")] = "rollback",
    alias: Annotated[str, typer.Option("--alias", "-a", help="Which alias to move back.")] = "production",
    server_url: ServerOpt = None,
) -> None:
    """Move an alias (production by default) back to the version that held it before."""
    with Client(server_url) as client:
        v = call(client.rollback_alias, name, alias, reason)
    err.print(f"{name}@{alias} rolled back → v{v['version']}", highlight=False)


@app.command()
def history(
    name: Annotated[str, typer.Argument(help="The model.")],
    alias: Annotated[str | None, typer.Option("--alias", "-a", help="Only this alias's moves.")] = None,
    server_url: ServerOpt = None,
) -> None:
    """Everything that happened to a model: registrations, evaluations, alias moves with who and why."""
    with Client(server_url) as client:
        items = call(client.model_events, name, alias)
    table = Table(box=None, header_style="bold")
    for col in ("TIME", "KIND", "WHO", "WHAT"):
        table.add_column(col)
    for e in items:
        t = render.parse_time(e["time"])
        table.add_row(f"{t:%Y-%m-%d %H:%M:%S}" if t else "-", e["kind"], e["actor"], e["reason"])
    out.print(table)


@app.command()
def update(
    ref: Annotated[str, typer.Argument(help="NAME@vN.")],
    description: Annotated[str | None, typer.Option(help="New description.")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="KEY=VALUE to set; repeat.")] = None,
    untag: Annotated[list[str] | None, typer.Option("--untag", help="KEY to remove; repeat.")] = None,
    server_url: ServerOpt = None,
) -> None:
    """Change a version's description or tags."""
    name, which = split_ref(ref)
    with Client(server_url) as client:
        v = call(client.update_model_version, name, which, description, _tags(tag), untag or [])
    err.print(f"{v['ref']}: tags {v['tags'] or '-'}; {v['description'] or 'no description'}", highlight=False)


@app.command()
def evaluate(
    ref: Annotated[str, typer.Argument(help="NAME@vN.")],
    server_url: ServerOpt = None,
) -> None:
    """Run the model's evaluation on a version again (e.g. after the evaluation changed)."""
    name, which = split_ref(ref)
    with Client(server_url) as client:
        v = call(client.evaluate_model_version, name, which)
    err.print(f"{v['ref']}: evaluation {v['evaluation']['state']}", highlight=False)
