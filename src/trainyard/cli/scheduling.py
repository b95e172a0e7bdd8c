"""`yard queue` and `yard teams`: what waits and why; who may use what."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from trainyard.cli import render
from trainyard.cli.errors import call
from trainyard.client import Client

out = Console()
teams_app = typer.Typer(no_args_is_help=False, invoke_without_command=True,
                        help="Teams and their quotas (list with no arguments).")
ServerOpt = Annotated[str | None, typer.Option("--server", envvar="TRAINYARD_SERVER", help="Server URL.")]


def queue(server_url: ServerOpt = None) -> None:
    """Jobs waiting to run, highest priority first, with the reason each one waits."""
    with Client(server_url) as client:
        items = call(client.request, "GET", "/v1/queue")["items"]
    table = Table(box=None, header_style="bold")
    for col in ("ID", "TEAM", "PRIORITY", "STATE", "AGE", "WHY IT WAITS"):
        table.add_column(col)
    for j in items:
        table.add_row(j["id"], j["team"], j["priority"], render.state(j["state"]), render.age(j["created_at"]),
                      j["reason"])
    out.print(table if items else "nothing is waiting")


def _limit(value: float | None) -> str:
    return "∞" if value is None else f"{value:g}"


@teams_app.callback()
def list_teams(ctx: typer.Context, server_url: ServerOpt = None) -> None:
    if ctx.invoked_subcommand is not None:
        return
    with Client(server_url) as client:
        items = call(client.request, "GET", "/v1/teams")["items"]
    table = Table(box=None, header_style="bold")
    for col in ("TEAM", "GPUS", "CPUS", "WEIGHT", "COHORT", "BORROW GPUS", "BORROW CPUS"):
        table.add_column(col)
    for t in items:
        table.add_row(t["name"], _limit(t["gpus"]), _limit(t["cpus"]), f"{t['weight']:g}", t["cohort"] or "-",
                      _limit(t["borrowing_limit_gpus"]), _limit(t["borrowing_limit_cpus"]))
    out.print(table if items else "no teams configured: every team is unlimited")


@teams_app.command("set")
def set_team(
    name: str,
    gpus: Annotated[int | None, typer.Option(help="Nominal GPU quota (unset: unlimited).")] = None,
    cpus: Annotated[float | None, typer.Option(help="Nominal CPU quota (unset: unlimited).")] = None,
    weight: Annotated[float, typer.Option(help="Fair-share weight.")] = 1.0,
    cohort: Annotated[str | None, typer.Option(help="Cohort whose idle quota it may borrow.")] = None,
    borrow_gpus: Annotated[int | None, typer.Option(help="Most GPUs it may borrow.")] = None,
    borrow_cpus: Annotated[float | None, typer.Option(help="Most CPUs it may borrow.")] = None,
    server_url: ServerOpt = None,
) -> None:
    """Create or replace a team's quota."""
    body = {"name": name, "gpus": gpus, "cpus": cpus, "weight": weight, "cohort": cohort,
            "borrowing_limit_gpus": borrow_gpus, "borrowing_limit_cpus": borrow_cpus}
    with Client(server_url) as client:
        call(client.request, "PUT", f"/v1/teams/{name}", json=body)
    out.print(f"team {name}: gpus {_limit(gpus)}, cpus {_limit(cpus)}, cohort {cohort or '-'}")


@teams_app.command("delete")
def delete_team(name: str, server_url: ServerOpt = None) -> None:
    """Remove a team's quota (its jobs become unlimited)."""
    with Client(server_url) as client:
        call(client.request, "DELETE", f"/v1/teams/{name}")
    out.print(f"team {name} removed")
