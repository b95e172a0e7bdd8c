"""`yard audit`: who changed what, when, from where, and how it ended."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from trainyard.cli import render
from trainyard.cli.errors import call, err
from trainyard.client import Client

out = Console()
WIDE = 240  # piped or redirected output: whole rows, one line each, for grep
REASON_CHARS = 100
ServerOpt = Annotated[str | None, typer.Option("--server", envvar="TRAINYARD_SERVER", help="Server URL.")]


def _object(row: dict[str, Any]) -> str:
    obj = dict(row["object"])
    if row["team"] and obj.get("team") != row["team"]:
        obj["team"] = row["team"]
    return " ".join(f"{k}={v}" for k, v in obj.items()) or "-"


def _action(row: dict[str, Any]) -> str:
    if row["action"] in ("method_not_allowed", "refused_before_routing"):  # no route's name to show
        return f"{row['action']} {row['method']} {row['route']}"
    return row["action"]


def _short(reason: str | None) -> str:
    if not reason:
        return ""
    return reason if len(reason) <= REASON_CHARS else reason[: REASON_CHARS - 1] + "…"


def audit_table(rows: list[dict[str, Any]]) -> Table:
    """One row per call; the short columns never wrap, the object and a refusal's reason do."""
    table = Table(box=None, header_style="bold")
    for col in ("TIME (UTC)", "ACTOR", "ACTION", "OUTCOME", "SOURCE"):
        table.add_column(col, no_wrap=True)
    table.add_column("OBJECT", overflow="fold", ratio=1)
    table.add_column("REASON", style="dim", ratio=1)
    for r in rows:
        when = render.parse_time(r["time"])
        code = Text(str(r["outcome"]), style="green" if r["outcome"] < 400 else "bold red")
        table.add_row(when.strftime("%m-%d %H:%M:%S") if when else "-", r["actor"], _action(r), code,
                      r["source"] or "-", _object(r), _short(r["reason"]))
    return table


def audit(
    since: Annotated[str | None, typer.Option(help="Only calls since: 1d, 12h, 30m, or an ISO 8601 time.")] = None,
    actor: Annotated[str | None, typer.Option(help="Only this actor's calls (a user, or `anonymous`).")] = None,
    action: Annotated[str | None, typer.Option(help="Only this action: submit_job, cancel_job, ...")] = None,
    limit: Annotated[int, typer.Option(help="At most this many rows, newest first (up to 1000).")] = 100,
    before: Annotated[int | None, typer.Option(help="Only rows older than this id (the next page).")] = None,
    server_url: ServerOpt = None,
) -> None:
    """Who changed what, when and from where: every state-changing call, accepted or refused."""
    with Client(server_url) as client:
        page = call(client.audit, since=since, actor=actor, action=action, limit=limit, before=before)
    console = out if out.is_terminal else Console(width=WIDE)
    console.print(audit_table(page["items"]) if page["items"] else "no audit rows match")
    if page["next"] is not None:
        err.print(f"older rows: add --before {page['next']}", highlight=False)
