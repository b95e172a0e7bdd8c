"""How every `yard` command fails: one clear line on stderr, a non-zero exit."""

from __future__ import annotations

from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from trainyard.client import ServerUnavailable, TrainyardError

err = Console(stderr=True)


def fail(message: str, code: int = 2) -> NoReturn:
    # escaped: a message quoting a spec ("e.g. [python, train.py]") would otherwise lose it as markup
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a client call, turning server and connection errors into one clear line."""
    try:
        return fn(*args, **kwargs)
    except (TrainyardError, ServerUnavailable, OSError) as exc:  # OSError: a local file to send or write
        fail(str(exc))
