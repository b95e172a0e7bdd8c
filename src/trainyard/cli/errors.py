"""How every `yard` command fails: one clear line on stderr, a non-zero exit."""

from __future__ import annotations

import os
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from trainyard.client import TOKEN_ENV, ServerUnavailable, TrainyardError, Unauthorized

err = Console(stderr=True)


def fail(message: str, code: int = 2) -> NoReturn:
    # escaped: a message quoting a spec ("e.g. [python, train.py]") would otherwise lose it as markup
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def refused(exc: Unauthorized) -> str:
    """A 401 as what to do about it: which token was refused, and how to get one that works."""
    login = f"`yard login --server {exc.server} --token <token>`"
    new = "a platform or team admin makes one with `yard tokens create`"
    if not exc.token_sent:
        return f"no token for {exc.server}: log in with {login} ({new}), or set {TOKEN_ENV}"
    if os.environ.get(TOKEN_ENV):
        return (f"the server at {exc.server} refused the token in {TOKEN_ENV} (unknown, expired or revoked): "
                f"set {TOKEN_ENV} to a live one, or unset it and log in with {login} ({new})")
    return (f"the server at {exc.server} refused this token (unknown, expired or revoked): log in again "
            f"with {login} ({new})")


def explain(exc: Exception) -> str:
    return refused(exc) if isinstance(exc, Unauthorized) else str(exc)


def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a client call, turning server and connection errors into one clear line."""
    try:
        return fn(*args, **kwargs)
    except (TrainyardError, ServerUnavailable, OSError) as exc:  # OSError: a local file to send or write
        fail(explain(exc))
