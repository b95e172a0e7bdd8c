"""The server names every checkpoint location: a commit says which step, never where.

Each test commits through the real HTTP route as a real, current attempt of a real job,
with real checkpoint directories written where the server says they live.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import torch

from tests.conftest import rank_token, wait_for
from trainyard.runtime.manifest import write_checkpoint


def running_job(server, tmp_path: Path, keep_last: int = 3) -> str:
    """A job whose one rank sleeps: its attempt 1 is current from launch until the test ends,
    well inside the first-heartbeat grace. The test plays the rank's part in committing."""
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    (code / "main.py").write_text("import time\ntime.sleep(600)\n")
    spec = {"name": "committer", "entrypoint": ["python", "main.py"], "code": str(code),
            "resources": {"workers": 1, "cpus_per_worker": 0.5, "memory_gb": 0.5},
            "checkpoint": {"keep_last": keep_last}}
    path = tmp_path / "job.json"
    path.write_text(json.dumps(spec))
    res = server.yard("submit", str(path), "-q")
    assert res.returncode == 0, res.stderr
    job_id = res.stdout.strip()
    wait_for(lambda: server.client().job(job_id)["attempt"] == 1, 60, what="attempt 1 to launch")
    return job_id


def location(server, job_id: str, step: int, attempt: int = 1) -> Path:
    return server.home / "checkpoints" / job_id / f"a{attempt:03d}-s{step:09d}"


def write_real(server, job_id: str, step: int, attempt: int = 1) -> tuple[dict, int]:
    """A checkpoint written as a rank writes it, in the directory the server names."""
    state = {"w": torch.full((8,), float(step)), "step": step}
    return write_checkpoint(location(server, job_id, step, attempt), state, step, attempt, {})


def commit(server, job_id: str, body: dict, attempt: int = 1) -> httpx.Response:
    """Commit as the job's rank does: with its attempt's own credential."""
    url = f"{server.url}/v1/training-jobs/{job_id}/attempts/{attempt}/checkpoints"
    token = rank_token(server.home, job_id, attempt)
    return httpx.post(url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def commit_real(server, job_id: str, step: int, with_uri: bool = False) -> httpx.Response:
    manifest, nbytes = write_real(server, job_id, step)
    body = {"step": step, "bytes": nbytes, "manifest": manifest, "metrics": {}}
    if with_uri:  # what ranks of an older runtime send: the location the server would derive anyway
        body["uri"] = str(location(server, job_id, step))
    return commit(server, job_id, body)


def refused_fields(res: httpx.Response) -> list[str]:
    assert 400 <= res.status_code < 500, (res.status_code, res.text)
    return [e["field"] for e in res.json().get("errors", [])]


def all_checkpoints(server, job_id: str) -> list[dict]:
    return server.http.get(f"/v1/training-jobs/{job_id}/checkpoints", params={"all": True}).json()["items"]


def test_commit_naming_a_directory_outside_the_job_root_is_refused_and_nothing_is_deleted(server, tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "data.txt").write_text("not a checkpoint")
    job_id = running_job(server, tmp_path)
    manifest = {"format": 1, "step": 1, "attempt": 1, "metrics": {},
                "files": [{"path": "data.txt", "bytes": 16, "sha256": "0" * 64}]}
    res = commit(server, job_id, {"step": 1, "uri": str(precious), "bytes": 16, "manifest": manifest})
    assert "uri" in refused_fields(res)
    for step in (2, 3, 4, 5):  # keep_last 3: had step 1 been stored, step 4 would have doomed it
        assert commit_real(server, job_id, step, with_uri=True).status_code == 201
    assert (precious / "data.txt").read_text() == "not a checkpoint"
    root = server.home / "checkpoints" / job_id
    assert {c["step"] for c in all_checkpoints(server, job_id)} == {2, 3, 4, 5}
    assert all(Path(c["uri"]).parent == root for c in all_checkpoints(server, job_id))


def test_commit_with_an_unparseable_uri_is_refused_and_later_commits_of_the_job_succeed(server, tmp_path):
    job_id = running_job(server, tmp_path, keep_last=1)
    res = commit(server, job_id, {"step": 1, "uri": "nosuchscheme://bucket/x", "bytes": 0,
                                  "manifest": {"files": []}})
    assert "uri" in refused_fields(res)
    for step in (2, 3, 4):
        res = commit_real(server, job_id, step)
        assert res.status_code == 201, res.text
    committed = server.client().checkpoints(job_id)
    assert [c["step"] for c in committed] == [4]
    assert not location(server, job_id, 2).exists() and not location(server, job_id, 3).exists()


def test_commit_without_a_manifest_at_the_servers_location_is_refused(server, tmp_path):
    job_id = running_job(server, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    manifest, nbytes = write_checkpoint(elsewhere, {"w": torch.zeros(2)}, 7, 1, {})
    res = commit(server, job_id, {"step": 7, "bytes": nbytes, "manifest": manifest})
    assert "step" in refused_fields(res)
    assert "MANIFEST.json" in res.text and str(location(server, job_id, 7)) in res.text
    assert all_checkpoints(server, job_id) == []


def test_commit_whose_manifest_names_a_file_outside_its_directory_is_refused(server, tmp_path):
    job_id = running_job(server, tmp_path)
    for step, name in enumerate(["../../escape.pt", "/etc/passwd", ""], start=1):
        manifest, nbytes = write_real(server, job_id, step)
        manifest["files"].append({"path": name, "bytes": 1, "sha256": "0" * 64})
        res = commit(server, job_id, {"step": step, "bytes": nbytes, "manifest": manifest})
        assert refused_fields(res) == ["manifest.files.1.path"], res.text
    assert all_checkpoints(server, job_id) == []


def test_a_commit_retried_after_its_answer_was_lost_is_recorded_once(server, tmp_path):
    job_id = running_job(server, tmp_path)
    manifest, nbytes = write_real(server, job_id, 5)
    body = {"step": 5, "bytes": nbytes, "manifest": manifest, "metrics": {"acc": 0.5}}
    assert commit(server, job_id, body).status_code == 201
    assert commit(server, job_id, body).status_code == 201
    [row] = all_checkpoints(server, job_id)
    assert row["step"] == 5 and row["state"] == "COMMITTED"
    assert row["uri"] == str(location(server, job_id, 5))


def test_retention_deletes_files_only_after_the_store_stopped_pointing_at_them(server, tmp_path):
    job_id = running_job(server, tmp_path, keep_last=1)
    assert commit_real(server, job_id, 1).status_code == 201
    assert commit_real(server, job_id, 2).status_code == 201
    rows = {c["step"]: c["state"] for c in all_checkpoints(server, job_id)}
    assert rows == {2: "COMMITTED", 1: "DELETED"}
    wait_for(lambda: not location(server, job_id, 1).exists(), 10, what="step 1's files to go")
    assert location(server, job_id, 2).exists()
