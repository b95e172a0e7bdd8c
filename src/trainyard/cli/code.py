"""The code a job, a sweep or an evaluation runs: archived here, uploaded, referred to by digest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainyard.cli.errors import call, fail
from trainyard.client import Client
from trainyard.storage.code_archive import pack_directory


def upload_code(client: Client, code_dir: Path, field: str = "code") -> dict[str, Any]:
    """Snapshot `code_dir` and upload it; returns the `code_snapshot` a submit refers to."""
    try:
        snap = pack_directory(code_dir.resolve())
    except ValueError as exc:
        fail(f"{field}: {str(exc).removeprefix('code: ')}")
    ref = call(client.upload_code, snap.archive)
    return {"digest": ref["digest"], "git_commit": snap.git_commit, "git_dirty": snap.git_dirty}
