"""`yard`: submit and watch training jobs; `yard server` runs the platform."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.console import Console
from typer.core import TyperGroup

from trainyard.cli import audit, datasets, identity, lineage, models, render, runs, scheduling, secrets, sweep
from trainyard.cli.code import upload_code
from trainyard.cli.errors import call, err, explain, fail
from trainyard.cli.sim import sim
from trainyard.cli.watch import watch
from trainyard.client import Client, ServerUnavailable, TrainyardError
from trainyard.spec import SpecError, load_spec_file, parse_job_spec

# `yard --help` lists the commands in these panels, in this order.
HELP_PANELS = ("Jobs", "Scheduling", "Sweeps", "Tracking", "Data", "Models", "Access", "Server")
JOBS, SCHEDULING, SWEEPS, TRACKING, DATA, MODELS, ACCESS, SERVER = HELP_PANELS


class _ByPanel(TyperGroup):
    """Lists commands panel by panel: Typer orders panels as their first command was registered,
    with every sub-app after every command."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        def panel(name: str) -> int:
            title = getattr(self.commands[name], "rich_help_panel", None)
            return HELP_PANELS.index(title) if title in HELP_PANELS else len(HELP_PANELS)

        return sorted(super().list_commands(ctx), key=panel)


app = typer.Typer(cls=_ByPanel, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="trainyard: a training platform. Submit PyTorch jobs; watch them run and recover.")
app.command("queue", rich_help_panel=SCHEDULING)(scheduling.queue)
app.add_typer(scheduling.teams_app, name="teams", rich_help_panel=SCHEDULING)
app.command("sim", rich_help_panel=SCHEDULING)(sim)
app.add_typer(sweep.app, name="sweep", rich_help_panel=SWEEPS)
app.add_typer(runs.app, name="runs", rich_help_panel=TRACKING)
app.command("lineage", rich_help_panel=TRACKING)(lineage.lineage)
app.command("rerun", rich_help_panel=TRACKING)(lineage.rerun)
app.add_typer(datasets.app, name="datasets", rich_help_panel=DATA)
app.add_typer(models.app, name="models", rich_help_panel=MODELS)
scheduling.teams_app.command("add-member")(identity.add_member)
scheduling.teams_app.command("remove-member")(identity.remove_member)
scheduling.teams_app.command("members")(identity.members)
app.add_typer(identity.users_app, name="users", rich_help_panel=ACCESS)
app.add_typer(identity.tokens_app, name="tokens", rich_help_panel=ACCESS)
app.command("login", rich_help_panel=ACCESS)(identity.login)
app.command("whoami", rich_help_panel=ACCESS)(identity.whoami)
app.add_typer(secrets.app, name="secrets", rich_help_panel=ACCESS)
out = Console()

ServerOpt = Annotated[str | None, typer.Option("--server", envvar="TRAINYARD_SERVER",
                                               help="Server URL (default http://127.0.0.1:8765).")]


@app.command(rich_help_panel=SERVER)
def server(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8765,
    cpus: Annotated[float | None, typer.Option(help="CPUs to schedule (default: this machine's).")] = None,
    gpus: Annotated[int | None, typer.Option(help="GPUs to schedule (default: NVML's count).")] = None,
    memory_gb: Annotated[float | None, typer.Option(help="Memory to schedule, GiB.")] = None,
    policy: Annotated[str, typer.Option(help="Scheduling policy: trainyard, backfill or fifo.")] = "trainyard",
    teams: Annotated[Path | None, typer.Option(help="Teams, quotas and priority classes (YAML).")] = None,
    preemption_grace_s: Annotated[float, typer.Option(
        help="Seconds a preempted gang gets to checkpoint after SIGTERM.")] = 30.0,
    orphan_grace_s: Annotated[float, typer.Option(
        min=1.0, help="Seconds a checkpoint directory or upload that no record names is kept, "
                      "unwritten, before it is deleted (so one in progress never is).")] = 3600.0,
    write_rate: Annotated[float | None, typer.Option(
        help="Writes a second each token may make (metric batches and heartbeats are not counted); "
             "default TRAINYARD_WRITE_RATE, else 20.")] = None,
    write_burst: Annotated[int | None, typer.Option(
        help="Writes each token may make at once; default TRAINYARD_WRITE_BURST, else 100.")] = None,
    control_loop: Annotated[bool, typer.Option(
        "--control-loop/--no-control-loop",
        help="Run the control loop here; --no-control-loop serves only the api, beside a process "
             "that runs the loop.")] = True,
) -> None:
    """Run the api and the control loop (SQLite store and local backend under TRAINYARD_HOME)."""
    import uvicorn

    from trainyard.api import Platform, SecretsKeyError, create_app
    from trainyard.config import ServerConfig
    from trainyard.scheduler.policy import PRESETS
    from trainyard.spec import SpecError

    if policy not in PRESETS:
        fail(f"--policy: unknown policy {policy!r}; use one of {', '.join(PRESETS)}")
    try:
        config = ServerConfig(host=host, port=port, cpus=cpus, gpus=gpus, memory_gb=memory_gb, policy=policy,
                              teams_file=teams, preemption_grace_s=preemption_grace_s, write_rate=write_rate,
                              orphan_grace_s=orphan_grace_s, write_burst=write_burst)
    except ValueError as exc:
        fail(str(exc))
    try:
        platform = Platform.open(config)
    except SpecError as exc:
        fail(f"--teams {teams}: {exc}")
    except SecretsKeyError as exc:
        fail(str(exc))
    cap = platform.backend.capacity()
    err.print(f"trainyard server on {config.url}  home {config.home}  capacity "
              f"{cap.cpus:g} CPUs, {cap.gpus} GPUs, {cap.memory_gb:.0f} GiB  (API docs: {config.url}/docs)"
              + ("" if control_loop else "  (api only: no control loop in this process)"))
    try:
        if control_loop:
            platform.loop.start()
        # proxy_headers off: a client on this machine could otherwise name any source address
        # (X-Forwarded-For) in the audit log; a proxy in front is configured, not trusted by default.
        uvicorn.run(create_app(platform), host=host, port=port, log_level="warning", proxy_headers=False)
    finally:  # the app closes the platform as it shuts down; this covers one that never started
        platform.close()


app.command("audit", rich_help_panel=SERVER)(audit.audit)


@app.command(rich_help_panel=JOBS)
def submit(
    spec_file: Annotated[Path, typer.Argument(help="A job spec, YAML or JSON.")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Watch the job until it ends.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the job id.")] = False,
    server_url: ServerOpt = None,
) -> None:
    """Snapshot the job's code, submit it, and print its id on the first line."""
    try:
        data = load_spec_file(spec_file)
        spec = parse_job_spec(data)
    except SpecError as exc:
        fail(str(exc))
    with Client(server_url) as client:
        code = upload_code(client, spec_file.parent / spec.code)
        job = call(client.submit, data, code)
        print(job["id"], flush=True)
        if not quiet:
            err.print(f"submitted {job['name']} (team {job['team']}): {job['state']}; "
                      f"code {code['digest'][:19]}…", highlight=False)
        if follow:
            raise typer.Exit(watch(client, job["id"]))


@app.command("watch", rich_help_panel=JOBS)
def watch_cmd(job_id: str, server_url: ServerOpt = None) -> None:
    """Live status and events of a job until it ends; exits 0 iff it succeeded."""
    with Client(server_url) as client:
        raise typer.Exit(watch(client, job_id))


@app.command("jobs", rich_help_panel=JOBS)
def jobs_cmd(
    state: Annotated[list[str] | None, typer.Option("--state", help="Only jobs in this state.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    server_url: ServerOpt = None,
) -> None:
    """List jobs: id, name, team, state, attempt, step, age."""
    with Client(server_url) as client:
        items = call(client.request, "GET", "/v1/training-jobs",
                     params={"limit": limit, **({"state": state} if state else {})})["items"]
    out.print(render.jobs_table(items))


@app.command(rich_help_panel=JOBS)
def status(job_id: str, server_url: ServerOpt = None) -> None:
    """A job's state, workers, checkpoints and events with their reasons."""
    with Client(server_url) as client:
        job = call(client.job, job_id)
        events = call(client.events, job_id)
    out.print(render.status_view(job, events))


@app.command(rich_help_panel=JOBS)
def logs(
    job_id: str,
    rank: Annotated[int, typer.Option("--rank", "-r", help="Which rank's log.")] = 0,
    attempt: Annotated[int | None, typer.Option(help="Which attempt (default: the current one).")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing as the job runs.")] = False,
    server_url: ServerOpt = None,
) -> None:
    """Print one rank's stdout and stderr."""
    with Client(server_url) as client:
        if follow:
            try:
                for text in client.follow_logs(job_id, rank=rank):
                    sys.stdout.write(text)
                    sys.stdout.flush()
            except (TrainyardError, ServerUnavailable) as exc:
                fail(explain(exc))
            return
        offset = 0
        while True:
            chunk = call(client.logs, job_id, rank=rank, attempt=attempt, offset=offset)
            sys.stdout.write(chunk["text"])
            if not chunk["text"]:
                break
            offset = chunk["offset"]


@app.command(rich_help_panel=JOBS)
def cancel(job_id: str, server_url: ServerOpt = None) -> None:
    """Stop a job: queued ones end now; running ones get SIGTERM, a grace period, then SIGKILL."""
    with Client(server_url) as client:
        job = call(client.cancel, job_id)
    err.print(f"{job['id']}: {job['state']} — {job['reason']}", highlight=False)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
