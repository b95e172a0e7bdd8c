"""Sweeps under test: the objective trial script, a sweep file beside it, and waiting for the end."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from tests.conftest import wait_for

OBJECTIVE = Path(__file__).parent / "objective"
XY = {"x": {"type": "float", "low": -5.0, "high": 5.0}, "y": {"type": "float", "low": -5.0, "high": 5.0}}


def write_sweep(tmp_path: Path, hyperparameters: dict | None = None, max_restarts: int = 0,
                **fields) -> Path:
    """A sweep file over tests/sweeps/objective (one cheap rank per trial)."""
    code = tmp_path / "objective"
    if not code.exists():
        shutil.copytree(OBJECTIVE, code)
    job = yaml.safe_load((code / "job.yaml").read_text())
    job["hyperparameters"].update(hyperparameters or {})
    job["max_restarts"] = max_restarts
    (code / "job.yaml").write_text(yaml.safe_dump(job))
    spec = {"name": "objective-sweep", "job": "objective/job.yaml", "metric": {"name": "loss"},
            "search": XY, "sampler": "random", "max_trials": 4, "parallelism": 2, **fields}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def start(server, path: Path) -> str:
    res = server.yard("sweep", str(path), "-q")
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def final(client, sweep_id: str, timeout: float = 180) -> dict:
    ended = ("SUCCEEDED", "FAILED", "CANCELLED")
    return wait_for(lambda: (w := client.sweep(sweep_id))["state"] in ended and w,
                    timeout, interval=0.5, what=f"sweep {sweep_id} to end")
