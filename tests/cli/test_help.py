"""What `yard --help` and the sweep docs show a user, read from a real `yard` process."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

from tests.conftest import REPO, YARD

NO_SERVER = "http://127.0.0.1:1"  # nothing listens there: a command that parses fails on the connection


def yard(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "100", "TERM": "dumb", "TRAINYARD_SERVER": NO_SERVER}
    return subprocess.run([*YARD, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=120)


def panels(help_text: str) -> dict[str, list[str]]:
    """Each boxed panel of a Rich help page, title -> the commands (or options) listed in it, in order."""
    found: dict[str, list[str]] = {}
    rows: list[str] | None = None
    for line in help_text.splitlines():
        if title := re.match(r"╭─ (.+?) ─", line):
            rows = found.setdefault(title[1], [])
        elif line.startswith("╰"):
            rows = None
        elif rows is not None and (name := re.match(r"│ (\S+)", line)):
            rows.append(name[1])
    return found


def test_yard_help_lists_commands_in_groups_in_a_fixed_order() -> None:
    result = yard("--help")
    assert result.returncode == 0, result.stderr
    shown = panels(result.stdout)
    assert list(shown) == ["Options", "Jobs", "Scheduling", "Sweeps", "Tracking", "Data", "Models", "Access",
                           "Server"]
    assert shown["Jobs"] == ["submit", "watch", "jobs", "status", "logs", "cancel"]
    assert sorted(shown["Scheduling"]) == ["queue", "sim", "teams"]
    assert shown["Sweeps"] == ["sweep"]
    assert sorted(shown["Tracking"]) == ["lineage", "rerun", "runs"]
    assert shown["Data"] == ["datasets"]
    assert shown["Models"] == ["models"]
    assert sorted(shown["Access"]) == ["login", "secrets", "tokens", "users", "whoami"]
    assert shown["Server"] == ["server", "audit"]


def documented_sweep_commands() -> list[str]:
    help_text = " ".join(yard("sweep", "--help").stdout.replace("│", " ").split())
    comment = (REPO / "examples" / "digits" / "sweep.yaml").read_text().splitlines()[0]
    return [*re.findall(r"`(yard sweep [^`|]*\.yaml[^`]*)`", help_text), *re.findall(r"`(yard sweep [^`]*)`", comment)]


def test_the_sweep_command_the_help_and_the_example_name_is_accepted() -> None:
    commands = documented_sweep_commands()
    assert [c.split()[:3] for c in commands] == [["yard", "sweep", "submit"]] * 2
    for command in commands:
        args = shlex.split(command)[1:]
        if not Path(args[2]).exists():  # the help names a file of the user's; use the example's
            args[2] = "examples/digits/sweep.yaml"
        result = yard(*args)
        assert result.returncode == 2
        assert f"no trainyard server at {NO_SERVER}" in result.stderr, (command, result.stderr)
