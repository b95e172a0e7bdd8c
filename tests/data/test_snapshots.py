"""Dataset snapshots through a real server: content-addressed versions, team ownership, and
verified read-only copies at launch (a tampered file fails the job, with the reason, no restarts)."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import pytest
import yaml

from tests.api.abuse import MiB, Watch
from tests.conftest import Server, wait_for
from trainyard.client import TrainyardError

READER = Path(__file__).parent / "reader"


def make_dir(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def snapshot(server: Server, name: str, path: Path, *extra: str) -> str:
    res = server.yard("datasets", "create", name, str(path), *extra)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def reader_job(tmp_path: Path, dataset: str, **fields) -> Path:
    code = tmp_path / f"reader-{dataset.replace('@', '-')}"
    shutil.copytree(READER, code)
    spec = yaml.safe_load((code / "job.yaml").read_text())
    spec.update(dataset=dataset, **fields)
    (code / "job.yaml").write_text(yaml.safe_dump(spec))
    return code / "job.yaml"


def run_job(server: Server, job_file: Path) -> dict:
    res = server.yard("submit", str(job_file), "-q")
    assert res.returncode == 0, res.stderr
    job_id = res.stdout.strip()
    with server.client() as c:
        return wait_for(lambda: (j := c.job(job_id))["state"] in ("SUCCEEDED", "FAILED") and j, 120,
                        what=f"job {job_id} to end")


def log_of(server: Server, job_id: str) -> str:
    return server.yard("logs", job_id).stdout


def stored_blobs(server: Server) -> set[str]:
    return {p.name for p in (server.home / "blobs" / "datasets").rglob("*") if p.is_file()}


def test_versions_store_an_unchanged_file_once_and_an_unchanged_manifest_is_no_new_version(data_server, tmp_path):
    data = make_dir(tmp_path / "d", {"a.txt": "alpha", "sub/b.txt": "beta"})
    assert snapshot(data_server, "dedupe", data) == "dedupe@v1"
    (data / "sub/b.txt").write_text("beta two")
    (data / "c.txt").write_text("alpha")  # same bytes as a.txt: same content, stored once
    assert snapshot(data_server, "dedupe", data) == "dedupe@v2"
    res = data_server.yard("datasets", "create", "dedupe", str(data))
    assert res.stdout.strip() == "dedupe@v2" and "unchanged" in res.stderr

    digests = {hashlib.sha256(t.encode()).hexdigest() for t in ("alpha", "beta", "beta two")}
    assert digests <= stored_blobs(data_server)
    with data_server.client() as c:
        v1, v2 = c.dataset_version("dedupe", 1), c.dataset_version("dedupe", "v2")
    assert [f["path"] for f in v1["files"]] == ["a.txt", "sub/b.txt"]
    assert [f["path"] for f in v2["files"]] == ["a.txt", "c.txt", "sub/b.txt"]
    assert v1["files"][0]["sha256"] == v2["files"][0]["sha256"] == hashlib.sha256(b"alpha").hexdigest()
    assert v1["digest"] != v2["digest"]
    listing = data_server.yard("datasets", "show", "dedupe")
    assert "dedupe@v1" in listing.stdout and "dedupe@v2" in listing.stdout


def test_job_reads_a_verified_read_only_copy_of_its_snapshot(data_server, tmp_path):
    ref = snapshot(data_server, "readable", make_dir(tmp_path / "d", {"a.txt": "alpha", "n/b.txt": "beta"}))
    job = run_job(data_server, reader_job(tmp_path, ref))
    assert job["state"] == "SUCCEEDED", job["reason"]
    log = log_of(data_server, job["id"])
    assert "a.txt: alpha (mode 444)" in log and "n/b.txt: beta (mode 444)" in log
    assert "dir mode 555" in log and "wrote into the snapshot" not in log
    with data_server.client() as c:
        lineage = c.run_lineage(job["id"])
        snap = c.dataset_version("readable", 1)
    assert lineage["dataset"]["ref"] == ref and lineage["dataset"]["digest"] == snap["digest"]


def test_job_of_another_team_is_refused_at_submit_with_a_field_error(data_server, tmp_path):
    ref = snapshot(data_server, "vision-only", make_dir(tmp_path / "d", {"a.txt": "x"}), "--team", "vision")
    with data_server.client() as c, pytest.raises(TrainyardError) as refused:
        c.submit({"name": "other", "team": "nlp", "entrypoint": ["python", "-c", "pass"], "dataset": ref})
    assert refused.value.status == 422
    [error] = refused.value.detail["errors"]
    assert error["field"] == "dataset"
    assert "belongs to team vision" in error["message"] and "team nlp cannot use it" in error["message"]

    res = data_server.yard("submit", str(reader_job(tmp_path, ref, team="nlp")))
    assert res.returncode != 0 and "belongs to team vision" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    with data_server.client() as c:
        assert not [j for j in c.jobs() if j["name"] == "reader" and j["team"] == "nlp"]


@pytest.mark.parametrize("dataset, message", [
    ("digits", "is not a snapshot; name one as NAME@vN"),
    ("nothing-here@v1", "no dataset 'nothing-here'"),
])
def test_a_bad_or_unknown_snapshot_is_refused_on_the_dataset_field(data_server, dataset, message):
    with data_server.client() as c, pytest.raises(TrainyardError) as refused:
        c.submit({"name": "bad", "entrypoint": ["python", "-c", "pass"], "dataset": dataset})
    assert refused.value.status == 422
    assert refused.value.detail["errors"][0]["field"] == "dataset"
    assert message in refused.value.detail["errors"][0]["message"]


def test_a_tampered_stored_file_fails_the_job_at_launch_with_the_reason_and_no_restart(data_server, tmp_path):
    ref = snapshot(data_server, "tamper-store", make_dir(tmp_path / "d", {"a.txt": "alpha", "b.txt": "bravo"}))
    sha = hashlib.sha256(b"bravo").hexdigest()
    blob = data_server.home / "blobs" / "datasets" / "sha256" / sha[:2] / sha
    blob.write_text("bravo, changed")
    job = run_job(data_server, reader_job(tmp_path, ref))
    assert job["state"] == "FAILED"
    assert f"dataset {ref}: the stored content of b.txt does not match its manifest" in job["reason"]
    assert "not restarted" in job["reason"] and job["restarts"] == 0 and job["attempt"] == 1
    with data_server.client() as c:
        kinds = [e["kind"] for e in c.events(job["id"])]
    assert kinds.count("failed") == 1 and "restarting" not in kinds and "launched" not in kinds


def test_a_tampered_local_copy_fails_the_job_and_the_next_launch_copies_afresh(data_server, tmp_path):
    ref = snapshot(data_server, "tamper-copy", make_dir(tmp_path / "d", {"a.txt": "alpha"}))
    first = run_job(data_server, reader_job(tmp_path, ref))
    assert first["state"] == "SUCCEEDED", first["reason"]
    with data_server.client() as c:
        digest = c.dataset_version("tamper-copy", 1)["digest"].removeprefix("sha256:")
    copy = data_server.home / "datasets" / digest / "a.txt"
    copy.chmod(0o644)
    copy.write_text("alpha, poisoned")

    second = run_job(data_server, reader_job(tmp_path / "2", ref))
    assert second["state"] == "FAILED"
    assert "the local copy does not match its manifest: a.txt has" in second["reason"]
    assert second["restarts"] == 0

    third = run_job(data_server, reader_job(tmp_path / "3", ref))
    assert third["state"] == "SUCCEEDED", third["reason"]
    assert "a.txt: alpha (mode 444)" in log_of(data_server, third["id"])


def test_upload_whose_bytes_do_not_hash_to_their_name_stores_nothing(data_server):
    wrong = hashlib.sha256(b"what it claims").hexdigest()
    with data_server.client() as c:
        with pytest.raises(TrainyardError) as refused:
            c.request("PUT", f"/v1/dataset-blobs/{wrong}", content=b"something else")
        assert refused.value.status == 422 and refused.value.detail["errors"][0]["field"] == "sha256"
        assert c.missing_dataset_blobs([wrong]) == [wrong]
        with pytest.raises(TrainyardError) as refused:
            c.create_dataset_version("unstored", [{"path": "a", "bytes": 14, "sha256": wrong}])
        assert refused.value.detail["errors"][0]["field"] == "files.0.sha256"
        with pytest.raises(TrainyardError):
            c.dataset("unstored")


def test_a_manifest_of_230000_files_is_validated_off_the_event_loop(data_server):
    """~29 MiB of JSON is seconds of decoding and validating: /healthz answers throughout, and the
    refusal of its last entry names that entry as it always has."""
    files = [{"path": f"data/{i // 1000:06d}/f-{i:07d}.bin", "bytes": i,
              "sha256": hashlib.sha256(str(i).encode()).hexdigest()} for i in range(230_000)]
    files[-1]["bytes"] = -1
    body = json.dumps({"name": "huge-manifest", "files": files}).encode()
    assert 28 * MiB < len(body) < 32 * MiB
    with Watch(data_server.proc.pid, data_server.url, every_s=0.02) as watch:
        resp = data_server.http.post("/v1/datasets", content=body,
                          headers={"content-type": "application/json"}, timeout=120)
        time.sleep(0.3)  # a stall that ends with the answer is recorded by probes answered after it
    assert resp.status_code == 422, resp.text[:500]
    assert [e["field"] for e in resp.json()["errors"]] == ["files.229999.bytes"]
    assert not watch.stalls(0.3), f"/healthz held up (start, s): {watch.stalls(0.3)}"


def test_a_manifest_that_is_not_json_is_refused_naming_the_body(data_server):
    resp = data_server.http.post("/v1/datasets", content=b'{"name": "x", "files": [',
                      headers={"content-type": "application/json"})
    assert resp.status_code == 422
    [error] = resp.json()["errors"]
    assert error["field"] == "(body)" and "JSON" in error["message"], error
    resp = data_server.http.post("/v1/dataset-blobs/missing", json={"sha256": "not-a-list"})
    assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "sha256"
