"""Registry tests: one real server per module, fake (torch-free) training and evaluation scripts."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Server, shared_server, wait_for

FAKE = Path(__file__).parent / "fake"
ENDED = ("SUCCEEDED", "FAILED", "CANCELLED")


@pytest.fixture(scope="module")
def registry_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with shared_server(tmp_path_factory, "registry") as (srv, root):
        data = root / "evalset"
        data.mkdir()
        (data / "labels.txt").write_text("0 1 2 3 4 5 6 7 8 9")
        res = srv.yard("datasets", "create", "evalset", str(data))
        assert res.returncode == 0, res.stderr
        yield srv


def fake_code(tmp_path: Path) -> Path:
    code = tmp_path / "fake"
    if not code.exists():
        shutil.copytree(FAKE, code)
    return code


def declare(server: Server, tmp_path: Path, name: str, **evaluation: Any) -> None:
    code = fake_code(tmp_path)
    spec = yaml.safe_load((code / "model.yaml").read_text())
    spec["name"] = name
    if evaluation.pop("none", False):
        del spec["evaluation"]
    else:
        spec["evaluation"].update(evaluation)
    path = code / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    res = server.yard("models", "create", str(path))
    assert res.returncode == 0, res.stderr


def train(server: Server, tmp_path: Path, wait: bool = True, **fields: Any) -> str:
    """Submit the fake training job (fields override job.yaml; hyperparameters merge) and wait."""
    code = fake_code(tmp_path)
    spec = yaml.safe_load((code / "job.yaml").read_text())
    spec["hyperparameters"].update(fields.pop("hyperparameters", {}))
    spec.update(fields)
    path = code / f"job-{len(list(code.glob('job-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(spec))
    res = server.yard("submit", str(path), "-q")
    assert res.returncode == 0, res.stderr
    job_id = res.stdout.strip()
    if wait:
        with server.client() as c:
            job = wait_for(lambda: (j := c.job(job_id))["state"] in ENDED and j, 120, what=f"job {job_id}")
        assert job["state"] == "SUCCEEDED", job["reason"]
    return job_id


def evaluated(server: Server, model: str, version: int) -> dict:
    with server.client() as c:
        return wait_for(lambda: (v := c.model_version(model, version))["evaluation"]["state"]
                        not in ("PENDING", "RUNNING") and v, 120, what=f"{model}@v{version}'s evaluation")
