"""Bad sweeps are refused whole, by field, over HTTP and from the CLI; nothing is half-written."""

from __future__ import annotations

from tests.sweeps.conftest import XY, write_sweep

TEMPLATE = {"name": "trial", "entrypoint": ["python", "objective.py"],
            "resources": {"workers": 1, "cpus_per_worker": 0.5, "memory_gb": 0.25}}


def test_bad_search_spaces_get_422_with_every_field_named(server):
    spec = {"name": "bad", "job": TEMPLATE, "metric": {"name": "loss"}, "max_trials": 4,
            "sampler": "annealing",
            "search": {"lr": {"type": "float", "low": 0.1, "high": 0.001},
                       "optimizer": {"type": "categorical", "values": []}}}
    resp = server.http.post("/v1/sweeps", json={"spec": spec})
    assert resp.status_code == 422
    fields = {e["field"]: e["message"] for e in resp.json()["errors"]}
    assert set(fields) == {"sampler", "search.lr.low", "search.optimizer.values"}
    assert "choose one of grid, random, tpe, gp, cmaes" in fields["sampler"]
    assert server.http.get("/v1/sweeps").json()["items"] == []
    assert server.http.get("/v1/training-jobs").json()["items"] == []


def test_a_trial_template_that_cannot_fit_is_refused(server):
    spec = {"name": "huge", "job": {**TEMPLATE, "resources": {"workers": 64, "cpus_per_worker": 8}},
            "metric": {"name": "loss"}, "max_trials": 2, "search": XY}
    resp = server.http.post("/v1/sweeps", json={"spec": spec})
    assert resp.status_code == 422
    assert resp.json()["errors"][0]["field"] == "job.resources.cpus_per_worker"


def test_cli_refuses_a_bad_sweep_file_in_one_line(server, tmp_path):
    path = write_sweep(tmp_path, search={"hidden": {"type": "int", "low": 512, "high": 32}}, sampler="grid")
    res = server.yard("sweep", str(path))
    assert res.returncode != 0
    assert res.stderr.strip().count("\n") == 0, res.stderr
    assert "search.hidden.low: low (512) must not be greater than high (32)" in res.stderr
    assert server.client().sweeps() == []


def test_unknown_sweep_is_404_and_says_how_to_list(server):
    resp = server.http.get("/v1/sweeps/nope-123456")
    assert resp.status_code == 404
    res = server.yard("sweep", "status", "nope-123456")
    assert res.returncode != 0 and "yard sweep list" in res.stderr
