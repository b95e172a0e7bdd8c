"""`yard secrets`: a team's credentials, which its jobs name in their spec and never hold in clear.

    printf %s "$HF_TOKEN" | yard secrets set vision HF_TOKEN   # or type it, unseen, at the prompt
    yard secrets list vision
    yard secrets delete vision HF_TOKEN

A job then writes `env: {HF_TOKEN: {secret: HF_TOKEN}}`; its ranks get the value, their logs show
`[secret HF_TOKEN]` instead of it.
"""

from __future__ import annotations

import getpass
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from trainyard.cli import render
from trainyard.cli.errors import call, err, fail
from trainyard.client import Client
from trainyard.spec import MAX_TEXT

app = typer.Typer(no_args_is_help=True, help="A team's secrets: set and delete them (team admins), list their "
                  "names (members). Specs name them as `env: {VAR: {secret: NAME}}`.")
out = Console()

ServerOpt = Annotated[str | None, typer.Option("--server", envvar="TRAINYARD_SERVER",
                                               help="Server URL (default http://127.0.0.1:8765).")]
Team = Annotated[str, typer.Argument(help="The team the secret belongs to.")]
Name = Annotated[str, typer.Argument(help="The secret's name, e.g. HF_TOKEN.")]


def read_value(name: str) -> str:
    """The value from stdin: typed at a hidden prompt on a terminal, else read whole (one final
    newline dropped, as `echo` adds one). Never printed."""
    if sys.stdin.isatty():
        value = getpass.getpass(f"value of {name} (not shown): ")
    else:
        value = sys.stdin.read(MAX_TEXT + 3)  # enough to tell a value that is too long
        value = value.removesuffix("\n").removesuffix("\r")
    if not value:
        fail(f"no value for {name} on stdin: pipe it in, e.g. `printf %s \"$VALUE\" | yard secrets set TEAM {name}`")
    if len(value) > MAX_TEXT:
        fail(f"the value on stdin is longer than {MAX_TEXT} characters, the most a secret holds")
    return value


@app.command("set")
def set_secret(team: Team, name: Name, server_url: ServerOpt = None) -> None:
    """Set or replace a secret, its value read from stdin (the team's admin role)."""
    value = read_value(name)
    with Client(server_url) as client:
        call(client.set_secret, team, name, value)
    err.print(f"secret {name} of team {team} set; jobs get it from their next launch", highlight=False)


@app.command("list")
def list_secrets(team: Team, server_url: ServerOpt = None) -> None:
    """The team's secrets by name, with when and by whom each was last set; never their values."""
    with Client(server_url) as client:
        items = call(client.secrets, team)
    if not items:
        out.print(f"team {team} has no secrets; set one with `yard secrets set {team} NAME`", highlight=False)
        return
    table = Table(box=None, header_style="bold")
    for col in ("NAME", "UPDATED", "BY"):
        table.add_column(col)
    for s in items:
        table.add_row(s["name"], f"{render.age(s['updated_at'])} ago", s["updated_by"])
    out.print(table)


@app.command("delete")
def delete_secret(team: Team, name: Name, server_url: ServerOpt = None) -> None:
    """Delete a secret (the team's admin role); queued jobs that name it fail at launch, saying so."""
    with Client(server_url) as client:
        call(client.delete_secret, team, name)
    err.print(f"secret {name} of team {team} deleted", highlight=False)
