"""The server is killed (SIGKILL) at each step of creating a dataset version and a sweep trial, then
restarted without the fault.

Whatever the step, a dataset name is either absent or holds a whole version (every file stored at
its size and sha256), the same `yard datasets create` then succeeds, and a job reads the version;
a sweep ends with exactly its grid, each trial once, each as one job that ran once, and no job the
sweep does not know of.
"""

from __future__ import annotations

import hashlib
import signal
import sqlite3
from pathlib import Path

import pytest
import yaml

from tests.conftest import Server, processes_under, wait_for
from tests.sweeps.conftest import final, start

READER = Path(__file__).parents[1] / "data" / "reader"
FILES = {"a.txt": "alpha", "sub/b.txt": "beta", "c.txt": "gamma"}
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")


def stored_rows(home: Path, sql: str) -> list[tuple]:
    """The store's rows, read straight from the database file while the server is down."""
    db = sqlite3.connect(home / "trainyard.db")
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


# -- dataset creation ----------------------------------------------------------------------


def dataset_dir(root: Path) -> Path:
    for name, text in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def assert_version_whole(server: Server, name: str, version: int) -> None:
    """Every file the version names is stored under its sha256 with its size and content."""
    snap = server.client().dataset_version(name, version)
    assert sorted(f["path"] for f in snap["files"]) == sorted(FILES)
    for f in snap["files"]:
        blob = server.home / "blobs" / "datasets" / "sha256" / f["sha256"][:2] / f["sha256"]
        data = blob.read_bytes()
        assert len(data) == f["bytes"] and hashlib.sha256(data).hexdigest() == f["sha256"], f
        assert data.decode() == FILES[f["path"]]


def read_with_a_job(server: Server, tmp_path: Path, ref: str) -> str:
    code = tmp_path / "reader"
    code.mkdir()
    for src in READER.iterdir():
        (code / src.name).write_bytes(src.read_bytes())
    spec = yaml.safe_load((code / "job.yaml").read_text())
    spec["dataset"] = ref
    (code / "job.yaml").write_text(yaml.safe_dump(spec))
    res = server.yard("submit", str(code / "job.yaml"), "-q")
    assert res.returncode == 0, res.stderr
    job_id = res.stdout.strip()
    client = server.client()
    job = wait_for(lambda: (j := client.job(job_id))["state"] in TERMINAL and j, 120, what="the reader job")
    assert job["state"] == "SUCCEEDED", job["reason"]
    return server.yard("logs", job_id).stdout


# what the first `yard datasets create` left, and how many files the same command uploads again
DATASET_POINTS = {
    "dataset_create.blob_unplaced": (False, 3),  # the temporary file is never taken for the blob
    "dataset_create.blob_placed": (False, 2),  # the placed blob is kept and not sent again
    "dataset_create.version_uncommitted": (False, 0),
    "dataset_create.version_committed": (True, 0),
}


@pytest.mark.parametrize("point", list(DATASET_POINTS))
def test_server_killed_while_creating_a_dataset_leaves_no_half_version_and_the_name_usable(
        make_server, tmp_path, monkeypatch, point):
    committed, uploads_again = DATASET_POINTS[point]
    data = dataset_dir(tmp_path / "data")
    monkeypatch.setenv("TRAINYARD_FAULTS", point)
    server = make_server()
    res = server.yard("datasets", "create", "crashset", str(data))
    assert res.returncode != 0, res.stdout
    assert server.proc.wait(timeout=60) == -signal.SIGKILL, "the server never reached " + point
    versions = stored_rows(server.home, "SELECT dataset, version FROM dataset_versions")
    names = stored_rows(server.home, "SELECT name FROM datasets")
    assert versions == ([("crashset", 1)] if committed else [])
    assert names == ([("crashset",)] if committed else [])  # no name held by a dataset without versions

    monkeypatch.delenv("TRAINYARD_FAULTS")
    server.start()
    listed = server.yard("datasets", "list")
    show = server.yard("datasets", "show", "crashset")
    if committed:
        assert "crashset@v1" in listed.stdout, listed.stdout
        assert show.returncode == 0 and "crashset@v1" in show.stdout, show.stderr
        assert_version_whole(server, "crashset", 1)
    else:
        assert "crashset" not in listed.stdout, listed.stdout
        assert show.returncode != 0 and "no dataset 'crashset'" in show.stderr, show.stderr

    again = server.yard("datasets", "create", "crashset", str(data))
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "crashset@v1"
    said = " ".join(again.stderr.split())  # as one line, however the terminal wrapped it
    what = "unchanged; same content as crashset@v1" if committed else "created crashset@v1"
    assert what in said and f"{uploads_again} uploaded" in said, said
    assert [v["ref"] for v in server.client().dataset("crashset")["items"]] == ["crashset@v1"]
    assert_version_whole(server, "crashset", 1)
    log = read_with_a_job(server, tmp_path, "crashset@v1")
    for path, text in FILES.items():
        assert f"{path}: {text}" in log, log


# -- sweep trial creation ------------------------------------------------------------------

TRIAL = """
import pathlib, time, trainyard
ctx = trainyard.init(hparams={"x": 0, "gates": ""})
x = int(ctx.hparams["x"])
gate = pathlib.Path(ctx.hparams["gates"]) / f"open-{x}"
while not gate.exists():  # the test says when each trial may end
    time.sleep(0.1)
ctx.log({"loss": float((x - 2) ** 2)}, step=1)
ctx.finish()
"""


def gated_sweep(tmp_path: Path, gates: Path) -> Path:
    """A grid of three trials, two at a time; trial x waits for the file gates/open-x."""
    code = tmp_path / "trial"
    code.mkdir()
    (code / "trial.py").write_text(TRIAL)
    job = {"name": "gated", "entrypoint": ["python", "trial.py"], "code": ".",
           "hyperparameters": {"gates": str(gates)}, "max_restarts": 0, "heartbeat_timeout_s": 60,
           "resources": {"workers": 1, "cpus_per_worker": 0.5, "memory_gb": 0.25}}
    (code / "job.yaml").write_text(yaml.safe_dump(job))
    spec = {"name": "gated-sweep", "job": "trial/job.yaml", "metric": {"name": "loss"}, "sampler": "grid",
            "parallelism": 2, "search": {"x": {"type": "int", "low": 0, "high": 2}}}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


# the trials and trial jobs the store holds while the server is down
SWEEP_POINTS = {"sweep_trial.after_job": 2, "sweep_trial.after_commit": 3}


@pytest.mark.slow
@pytest.mark.parametrize("point", list(SWEEP_POINTS))
def test_server_killed_while_creating_a_sweep_trial_loses_and_duplicates_no_trial(
        make_server, tmp_path, monkeypatch, point):
    gates = tmp_path / "gates"
    gates.mkdir()
    server = make_server()
    sweep_id = start(server, gated_sweep(tmp_path, gates))
    client = server.client()
    trials = wait_for(lambda: len(ts := client.sweep_trials(sweep_id)) == 2
                      and all(client.job(t["job_id"])["state"] == "RUNNING" for t in ts) and ts,
                      120, what="the first two trials running")
    # the crash comes at the third trial, created while trial 1 still runs: a restart with the point armed
    server.kill()
    monkeypatch.setenv("TRAINYARD_FAULTS", point)
    server.start()
    (gates / f"open-{trials[0]['params']['x']}").touch()
    assert server.proc.wait(timeout=120) == -signal.SIGKILL, "the server never reached " + point
    stored = stored_rows(server.home, "SELECT number, job_id FROM sweep_trials ORDER BY number")
    jobs = stored_rows(server.home, "SELECT id, state FROM jobs")
    assert len(stored) == len(jobs) == SWEEP_POINTS[point], (stored, jobs)
    assert {j for _, j in stored} == {j for j, _ in jobs}  # no job the sweep does not know of

    monkeypatch.delenv("TRAINYARD_FAULTS")
    server.start()
    client = server.client()
    for x in range(3):
        (gates / f"open-{x}").touch()
    sweep = final(client, sweep_id)
    assert sweep["state"] == "SUCCEEDED", sweep["reason"]
    trials = client.sweep_trials(sweep_id)
    assert [t["number"] for t in trials] == [0, 1, 2]
    assert sorted(t["params"]["x"] for t in trials) == [0, 1, 2]  # the grid, each point once
    assert all(t["state"] == "COMPLETE" for t in trials), trials
    assert sweep["best"]["params"] == {"x": 2}
    jobs = {j["id"]: j for j in client.jobs()}
    assert set(jobs) == {t["job_id"] for t in trials}, "a trial job the sweep does not know of"
    for job in jobs.values():  # each ran once: trial 1 was re-adopted across both restarts, not relaunched
        assert job["state"] == "SUCCEEDED" and job["attempt"] == 1, job
    started = [e for e in client.sweep_events(sweep_id) if e["kind"] == "trial_started"]
    assert len(started) == 3, started
    wait_for(lambda: not processes_under(server.home), 15, what="every rank process to be gone")
