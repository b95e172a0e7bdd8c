"""`yard users`, `yard tokens`, `yard teams add-member|remove-member|members`, `yard login`, `yard whoami`.

    yard users create alice --email a@x.org                  # a platform admin
    yard teams add-member vision alice --role member          # the team's admin
    yard tokens create --user alice --name laptop --expires 30d   # the token: last word of the last line
    yard tokens create --service ci --team vision --role member   # a service account's, scoped to vision
    yard login --server https://yard.example --token tyu_...      # checked, then kept (mode 0600)
    yard whoami
"""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from trainyard.cli import render
from trainyard.cli.errors import call, err, explain, fail
from trainyard.client import TOKEN_ENV, Client, ServerUnavailable, TrainyardError, Unauthorized, save_token

out = Console()
users_app = typer.Typer(no_args_is_help=True, help="Users: people and service accounts (a platform admin's).")
tokens_app = typer.Typer(no_args_is_help=True, help="API tokens: make, list and revoke them. A token is "
                         "shown once, when it is made; the server keeps only its digest.")

ServerOpt = Annotated[str | None, typer.Option("--server", envvar="TRAINYARD_SERVER",
                                               help="Server URL (default http://127.0.0.1:8765).")]
ROLES = ("admin", "member", "viewer")
RoleOpt = Annotated[str, typer.Option("--role", help="admin, member or viewer.")]


def _role(value: str, flag: str = "--role") -> str:
    if value not in ROLES:
        fail(f"{flag}: {value!r} is not a role; use one of {', '.join(ROLES)}")
    return value


def _when(value: str | None, never: str = "never") -> str:
    t = render.parse_time(value)
    return t.strftime("%Y-%m-%d %H:%M") if t else never


def _roles(roles: dict[str, str] | None, none: str) -> str:
    if roles is None:
        return none
    return ", ".join(f"{team}:{role}" for team, role in sorted(roles.items())) or "(no team)"


def _table(*columns: str) -> Table:
    table = Table(box=None, header_style="bold")
    for col in columns:
        table.add_column(col, no_wrap=col in ("ID", "NAME", "USER"))
    return table


# -- users ------------------------------------------------------------------------------


@users_app.command("create")
def create_user(
    name: Annotated[str, typer.Argument(help="Lowercase letters, digits, '.', '_', '-'.")],
    email: Annotated[str | None, typer.Option(help="Their email address.")] = None,
    server_url: ServerOpt = None,
) -> None:
    """Add a user (a platform admin's). Then: `yard teams add-member TEAM NAME`, `yard tokens create --user NAME`."""
    with Client(server_url) as client:
        user = call(client.create_user, name, email)
    out.print(f"user {user['name']} created; give them a role with `yard teams add-member <team> {name} "
              f"--role member` and a token with `yard tokens create --user {name}`", highlight=False)


@users_app.command("list")
def list_users(server_url: ServerOpt = None) -> None:
    """Every user and service account with their roles (a platform admin's)."""
    with Client(server_url) as client:
        items = call(client.users)
    table = _table("NAME", "KIND", "EMAIL", "PLATFORM ADMIN", "ROLES")
    for u in items:
        table.add_row(u["name"], u["kind"], u["email"] or "-", "yes" if u["platform_admin"] else "-",
                      _roles(u["roles"], "-") + (" (disabled)" if u["disabled"] else ""))
    out.print(table)


# -- team members (subcommands of `yard teams`) ------------------------------------------


def add_member(
    team: Annotated[str, typer.Argument(help="The team.")],
    user: Annotated[str, typer.Argument(help="The user or service account.")],
    role: RoleOpt = "member",
    server_url: ServerOpt = None,
) -> None:
    """Give a user a role in a team, or change it (the team's admin or a platform admin)."""
    with Client(server_url) as client:
        m = call(client.set_member, team, user, _role(role))
    out.print(f"{m['user']} is {m['role']} of team {m['team']}", highlight=False)


def remove_member(
    team: Annotated[str, typer.Argument(help="The team.")],
    user: Annotated[str, typer.Argument(help="The user or service account.")],
    server_url: ServerOpt = None,
) -> None:
    """Take a user's role in a team away (their tokens lose it at once)."""
    with Client(server_url) as client:
        call(client.remove_member, team, user)
    out.print(f"{user} is no longer a member of team {team}", highlight=False)


def members(team: Annotated[str, typer.Argument(help="The team.")], server_url: ServerOpt = None) -> None:
    """A team's members and their roles (any member of the team may look)."""
    with Client(server_url) as client:
        items = call(client.members, team)
    table = _table("USER", "KIND", "ROLE")
    for m in items:
        table.add_row(m["user"], m["kind"], m["role"])
    out.print(table if items else f"team {team} has no members")


# -- tokens -----------------------------------------------------------------------------


def _scopes(values: list[str] | None) -> dict[str, str] | None:
    if not values:
        return None
    scopes: dict[str, str] = {}
    for value in values:
        team, sep, role = value.partition("=")
        if not sep or not team:
            fail(f"--scope: {value!r} is not TEAM=ROLE, e.g. --scope vision=viewer")
        scopes[team] = _role(role, "--scope")
    return scopes


@tokens_app.command("create")
def create_token(
    user: Annotated[str | None, typer.Option(help="Whose token (default: yours; another's takes a "
                                                  "platform admin).")] = None,
    service: Annotated[str | None, typer.Option(help="A service account's token instead (made if new); "
                                                     "with --team and --role.")] = None,
    team: Annotated[str | None, typer.Option(help="With --service: the team it works for.")] = None,
    role: Annotated[str | None, typer.Option(help="With --service: its role in --team (admin, member, "
                                                  "viewer).")] = None,
    scope: Annotated[list[str] | None, typer.Option(help="TEAM=ROLE: at most this role in this team, none "
                                                         "elsewhere (repeatable; default: all the owner's "
                                                         "roles).")] = None,
    name: Annotated[str, typer.Option(help="What it is for, e.g. laptop or ci.")] = "default",
    expires: Annotated[str | None, typer.Option(help="How long it lives: 90m, 12h, 30d (default 90d, at "
                                                     "most 365d).")] = None,
    server_url: ServerOpt = None,
) -> None:
    """Make a token; it is printed once, as the last line: keep it now (`yard login --token ...`)."""
    with Client(server_url) as client:
        if service is not None:
            if user is not None or scope:
                fail("--service: a service account's token takes --team and --role, not --user or --scope")
            if team is None or role is None:
                fail("--service: name the team and the role it gets there, e.g. --team vision --role member")
            made = call(client.create_service_token, team, service, _role(role), name, expires)
        else:
            if team is not None or role is not None:
                fail("--team/--role: only with --service; scope a user's token with --scope TEAM=ROLE")
            made = call(client.create_token, name, expires, user, _scopes(scope))
    out.print(f"token {made['id']} ({made['name']}) of {made['user']}, roles "
              f"{_roles(made['scopes'], 'all of ' + made['user'] + chr(39) + 's')}, expires "
              f"{_when(made['expires_at'])} UTC; it is shown only now:", highlight=False)
    print(made["token"], flush=True)


@tokens_app.command("list")
def list_tokens(
    user: Annotated[str | None, typer.Option(help="Only this owner's tokens.")] = None,
    server_url: ServerOpt = None,
) -> None:
    """Your tokens (and your teams' service accounts'; a platform admin sees all): never their secrets."""
    with Client(server_url) as client:
        items = call(client.tokens, user)
    table = _table("ID", "NAME", "USER", "ROLES", "EXPIRES", "STATE")
    for t in items:
        table.add_row(t["id"], t["name"], t["user"], _roles(t["scopes"], "all"), _when(t["expires_at"]),
                      t["state"])
    out.print(table if items else "no tokens")


@tokens_app.command("revoke")
def revoke_token(token_id: Annotated[str, typer.Argument(help="The token's id (`yard tokens list`).")],
                 server_url: ServerOpt = None) -> None:
    """Revoke a token: every call with it is refused from now on."""
    with Client(server_url) as client:
        t = call(client.revoke_token, token_id)
    out.print(f"token {t['id']} ({t['name']}) of {t['user']} revoked", highlight=False)


# -- who I am ----------------------------------------------------------------------------


def login(
    server_url: ServerOpt = None,
    token: Annotated[str | None, typer.Option(help="The token (`yard tokens create`); asked for if "
                                                   "omitted, so it stays out of your shell history.")] = None,
) -> None:
    """Check a token against the server, then keep it for that server (mode 0600) for later commands."""
    if token is None:
        token = typer.prompt("token", hide_input=True)
    token = token.strip()
    if not token:
        fail("--token: empty; paste the last line `yard tokens create` printed")
    with Client(server_url, token=token) as client:
        try:
            who = client.whoami()
        except Unauthorized:
            fail(f"the server at {client.url} refused that token (unknown, expired or revoked); nothing was "
                 "stored: ask an admin for a new one (`yard tokens create`)")
        except (TrainyardError, ServerUnavailable) as exc:
            fail(explain(exc))
        url = client.url
    path = call(save_token, url, token)
    out.print(f"logged in to {url} as {who['name']} ({who['kind']}); token kept in {path}", highlight=False)
    if os.environ.get(TOKEN_ENV):
        err.print(f"note: {TOKEN_ENV} is set in this shell and is used before the stored token")


def whoami(server_url: ServerOpt = None) -> None:
    """Who the current token speaks for: name, kind, platform admin, and the roles it carries."""
    with Client(server_url) as client:
        who = call(client.whoami)
        url = client.url
    admin = "platform admin" if who["platform_admin"] else "not a platform admin"
    line = f"{who['name']} ({who['kind']}, {admin}) on {url}"
    if who.get("token_id"):
        line += f"; token {who['token_id']}"
    out.print(line, highlight=False)
    if who["roles"]:
        table = _table("TEAM", "ROLE")
        for team, role in who["roles"].items():
            table.add_row(team, role)
        out.print(table)
    elif not who["platform_admin"]:
        out.print("no roles in any team: ask a team's admin (`yard teams add-member <team> "
                  f"{who['name']} --role member`)", highlight=False)
