"""Lineage of a run and of a model version, and `yard rerun` from the recorded inputs."""

from __future__ import annotations

import platform

from tests.conftest import wait_for
from tests.registry.conftest import declare, train


def test_lineage_of_a_version_prints_code_digest_snapshot_params_and_environment(registry_server, tmp_path):
    srv = registry_server
    declare(srv, tmp_path, "traced", none=True)
    job_id = train(srv, tmp_path, dataset="evalset@v1", hyperparameters={"lr": 0.25})
    with srv.client() as c:
        c.register_model_version("traced", job_id, checkpoint="latest")
        job = c.job(job_id)
        snap = c.dataset_version("evalset", 1)
        doc = c.version_lineage("traced", 1)
    assert doc["run"]["code"]["digest"] == job["code"]["digest"]
    assert doc["run"]["dataset"] == {"ref": "evalset@v1", "available": True, "digest": snap["digest"],
                                     "files": 1, "bytes": snap["bytes"]}
    assert doc["run"]["environment"]["python"] == platform.python_version()
    assert doc["run"]["environment"]["packages"]["trainyard"]
    assert [c["step"] for c in doc["run"]["checkpoints"]] == [1, 2, 3]
    assert doc["checkpoint"]["step"] == 3

    res = srv.yard("lineage", "traced@v1")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "traced@v1" in out and f"run {job_id}" in out
    assert f"code {job['code']['digest']}" in out
    assert f"dataset evalset@v1  {snap['digest']}" in out
    assert "lr=0.25" in out and "val_acc=[0.5, 0.95, 0.93]" in out
    assert f"Python {platform.python_version()}" in out and "started from scratch" in out


def test_rerun_submits_the_same_spec_code_and_dataset_and_reproduces_the_metrics(registry_server, tmp_path):
    srv = registry_server
    first = train(srv, tmp_path, dataset="evalset@v1", hyperparameters={"val_acc": [0.7, 0.8]})
    res = srv.yard("rerun", first)
    assert res.returncode == 0, res.stderr
    again = res.stdout.strip()
    with srv.client() as c:
        done = wait_for(lambda: (j := c.job(again))["state"] in ("SUCCEEDED", "FAILED") and j, 120,
                        what="the rerun")
        old, new = c.job(first), done
        old_lineage, new_lineage = c.run_lineage(first), c.run_lineage(again)
    assert new["state"] == "SUCCEEDED", new["reason"]
    assert new["code"] == old["code"]
    assert {**new["spec"], "labels": {}} == {**old["spec"], "labels": {}}
    assert new["spec"]["labels"] == {"rerun_of": first}
    assert new_lineage["rerun_of"] == first and new_lineage["dataset"] == old_lineage["dataset"]
    assert new_lineage["final_metrics"] == old_lineage["final_metrics"] == {"val_acc": 0.8}
