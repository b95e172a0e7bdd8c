"""A spec a user gets wrong is refused by `yard submit` with one line that shows what to write."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.test_help import yard


@pytest.mark.parametrize(("entrypoint", "message"), [
    ("[]", "error: entrypoint: give the command to run as a list, e.g. entrypoint: [python, train.py]"),
    ('[" ", train.py]', "error: entrypoint: entrypoint must start with a program, e.g. entrypoint: [python, train.py]"),
])
def test_empty_entrypoint_is_refused_with_an_example_to_copy(tmp_path: Path, entrypoint: str, message: str) -> None:
    spec = tmp_path / "job.yaml"
    spec.write_text(f"name: demo\nentrypoint: {entrypoint}\n")
    result = yard("submit", str(spec))
    assert result.returncode == 2
    assert result.stderr.strip() == message
    assert result.stdout == ""
