"""A real `yard server` seeded with one of everything, shared by the fuzz tests of this package.

The seed goes through the API the way users make things: a job submitted with its code (the
registry's fake training script, which commits checkpoints), a client run with params, tags,
metrics and an artifact, a finished sweep, a dataset snapshot, and a model with a version and
an alias. `Seeded.ids` names them, so the fuzzer can aim at real objects as well as missing ones.
"""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Server, shared_server, wait_for
from trainyard.client import Client

FAKE = Path(__file__).parents[1] / "registry" / "fake"
OBJECTIVE = Path(__file__).parents[1] / "sweeps" / "objective"
ENDED = ("SUCCEEDED", "FAILED", "CANCELLED")


@dataclass
class Tally:
    """What the fuzzer sent and what came back: the figures `make fuzz` prints."""

    examples: int = 0
    requests: int = 0
    started: float = 0.0
    operations: set[str] = field(default_factory=set)
    server_errors: Counter[str] = field(default_factory=Counter)
    failing: Counter[str] = field(default_factory=Counter)  # responses a check refused (5xx or schema)

    def figures(self) -> dict[str, Any]:
        return {"operations": len(self.operations), "requests": self.requests,
                "server_errors": sum(self.server_errors.values()), "failing_responses": sum(self.failing.values()),
                "examples_per_operation": self.examples, "seconds": round(time.monotonic() - self.started, 1),
                "server_errors_by_operation": dict(self.server_errors)}


TALLY = Tally()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TALLY.requests:
        terminalreporter.write_line(f"fuzz: {json.dumps(TALLY.figures())}")


@dataclass
class Seeded:
    server: Server
    job_id: str
    run_id: str
    sweep_id: str
    trial_job_id: str
    dataset: str
    dataset_sha256: str
    model: str
    ids: dict[str, list[Any]] = field(default_factory=dict)


def _submit(server: Server, spec_path: Path, *args: str) -> str:
    res = server.yard(*args, str(spec_path), "-q")
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def _seed(server: Server, root: Path) -> Seeded:
    code = root / "fake"
    shutil.copytree(FAKE, code)
    objective = root / "objective"
    shutil.copytree(OBJECTIVE, objective)
    data = root / "fuzz-data"
    (data / "split").mkdir(parents=True)
    (data / "labels.txt").write_text("0 1 2 3 4 5 6 7 8 9\n")
    (data / "split" / "train.txt").write_text("1 2 3\n")

    with server.client() as c:
        snapshot = c.create_dataset("fuzz-data", data)
        detail = c.dataset_version("fuzz-data", snapshot["version"])

        job_id = _submit(server, code / "job.yaml", "submit")
        sweep_spec = {"name": "fuzz-sweep", "job": "objective/job.yaml", "metric": {"name": "loss"},
                      "search": {"x": {"type": "float", "low": -5.0, "high": 5.0}},
                      "sampler": "random", "max_trials": 2, "parallelism": 2}
        (root / "sweep.yaml").write_text(yaml.safe_dump(sweep_spec))
        sweep_id = _submit(server, root / "sweep.yaml", "sweep")

        run = c.create_run(name="fuzz-run", experiment="fuzzing", params={"lr": 0.01, "opt": {"name": "adam"}},
                           tags={"team": "vision"})
        now = time.time()
        c.log_metrics(run["id"], [{"key": k, "step": s, "timestamp": now + s, "value": v}
                                  for s in range(1, 6) for k, v in (("loss", 1.0 / s), ("val_acc", 0.5 + s / 10))])
        c.upload_artifact(run["id"], "out/model.txt", b"weights\n")
        c.end_run(run["id"])

        job = wait_for(lambda: (j := c.job(job_id))["state"] in ENDED and j, 180, what=f"job {job_id}")
        assert job["state"] == "SUCCEEDED", job["reason"]
        sweep = wait_for(lambda: (w := c.sweep(sweep_id))["state"] in ENDED and w, 180, what=f"sweep {sweep_id}")
        trial_job_id = c.sweep_trials(sweep_id)[0]["job_id"]

        model = yaml.safe_load((code / "model.yaml").read_text())
        model.update(name="fuzz-model")
        model["evaluation"]["dataset"] = snapshot["ref"]
        (code / "fuzz-model.yaml").write_text(yaml.safe_dump(model))
        res = server.yard("models", "create", str(code / "fuzz-model.yaml"))
        assert res.returncode == 0, res.stderr
        version = c.register_model_version("fuzz-model", job_id, "best", tags={"seed": "yes"})
        c.move_alias("fuzz-model", "staging", version["version"], "seeded for fuzzing")
        wait_for(lambda: c.model_version("fuzz-model", 1)["evaluation"]["state"] not in ("PENDING", "RUNNING"),
                 180, what="the seeded version's evaluation")
        assert sweep["state"] == "SUCCEEDED", sweep["reason"]

    sha = detail["files"][0]["sha256"]
    ids: dict[str, list[Any]] = {
        "run_ids": [job_id, run["id"], trial_job_id],
        "sweep_ids": [sweep_id],
        "names": ["fuzz-model", "fuzz-data", "default"],
        "versions": ["1", "v1", "staging", "production"],
        "aliases": ["staging", "production"],
        "attempts": [1],
        "steps": [1, 2, 3],
        "metric_keys": ["loss", "val_acc"],
        "artifact_paths": ["out/model.txt"],
        "sha256s": [sha],
    }
    return Seeded(server, job_id, run["id"], sweep_id, trial_job_id, "fuzz-data", sha, "fuzz-model", ids)


@pytest.fixture(scope="package")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    # The fuzzer sends hundreds of writes a second with one token: unthrottled, so that they reach the
    # routes they aim at instead of the rate limit's 429 (tests/auth/test_rate_limits.py tests that).
    with shared_server(tmp_path_factory, "fuzz", "--write-rate", "100000", "--write-burst", "100000") as (server, root):
        yield _seed(server, root)


@pytest.fixture
def client(seeded: Seeded) -> Iterator[Client]:
    with seeded.server.client() as c:
        yield c
