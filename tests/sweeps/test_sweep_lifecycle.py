"""Sweeps of cheap trials through a real server: grids, failures, cancel, and a server crash."""

from __future__ import annotations

import itertools

import pytest

from tests.conftest import wait_for
from tests.sweeps.conftest import final, start, write_sweep

pytestmark = pytest.mark.slow

TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")


def test_grid_sweep_runs_exactly_its_grid_and_best_prints_the_winner(server, tmp_path):
    path = write_sweep(tmp_path, sampler="grid", max_trials=None, parallelism=2, search={
        "x": {"type": "int", "low": 0, "high": 2}, "y": {"type": "categorical", "values": [-1, 0]}})
    sweep_id = start(server, path)
    client = server.client()
    sweep = final(client, sweep_id)
    assert sweep["state"] == "SUCCEEDED", sweep["reason"]
    trials = client.sweep_trials(sweep_id)
    seen = sorted((t["params"]["x"], t["params"]["y"]) for t in trials)
    assert seen == sorted(itertools.product([0, 1, 2], [-1, 0]))
    assert all(t["state"] == "COMPLETE" for t in trials)
    assert sweep["best"]["params"] == {"x": 2, "y": -1}
    best = server.yard("sweep", "best", sweep_id)
    assert best.returncode == 0, best.stderr
    assert "x=2 y=-1" in best.stdout and "loss=0.3333" in best.stdout


def test_failing_trial_is_retried_then_told_failed_and_the_sweep_goes_on(server, tmp_path):
    path = write_sweep(tmp_path, max_restarts=1, sampler="grid", max_trials=None, search={
        "crash": {"type": "categorical", "values": [False, True]},
        "x": {"type": "categorical", "values": [1.0, 2.0]}})
    sweep_id = start(server, path)
    client = server.client()
    sweep = final(client, sweep_id)
    assert sweep["state"] == "SUCCEEDED", sweep["reason"]
    trials = {(t["params"]["crash"], t["params"]["x"]): t for t in client.sweep_trials(sweep_id)}
    assert len(trials) == 4
    for x in (1.0, 2.0):
        crashed = trials[(True, x)]
        assert crashed["state"] == "FAILED"
        assert "max_restarts (1) exhausted" in crashed["reason"]
        assert client.job(crashed["job_id"])["attempt"] == 2  # retried once before the sampler heard
        assert trials[(False, x)]["state"] == "COMPLETE"
    assert sweep["trials"] == {"COMPLETE": 2, "FAILED": 2}


def test_cancel_stops_every_running_trial_and_starts_no_more(server, tmp_path):
    path = write_sweep(tmp_path, {"epochs": 60, "sleep": 1.0}, max_trials=10, parallelism=2)
    sweep_id = start(server, path)
    client = server.client()
    running = lambda: sum(client.job(t["job_id"])["state"] == "RUNNING"  # noqa: E731
                          for t in client.sweep_trials(sweep_id))
    wait_for(lambda: running() == 2, 90, what="two trials running")
    res = server.yard("sweep", "cancel", sweep_id)
    assert res.returncode == 0, res.stderr
    sweep = final(client, sweep_id, timeout=30)
    assert sweep["state"] == "CANCELLED"
    trials = client.sweep_trials(sweep_id)
    assert len(trials) == 2 and all(t["state"] == "CANCELLED" for t in trials)
    jobs = wait_for(lambda: all((js := [client.job(t["job_id"]) for t in trials])[i]["state"] in TERMINAL
                                for i in range(2)) and js, 60, what="trial jobs to stop")
    assert [j["state"] for j in jobs] == ["CANCELLED", "CANCELLED"]
    assert len(client.jobs()) == 2


def test_server_killed_mid_sweep_finishes_with_exactly_max_trials(make_server, tmp_path):
    server = make_server()
    path = write_sweep(tmp_path, {"epochs": 3, "sleep": 0.7}, sampler="tpe", max_trials=8, parallelism=2,
                       early_stopping={"type": "median", "n_startup_trials": 2, "min_resource": 1})
    sweep_id = start(server, path)
    client = server.client()
    wait_for(lambda: (c := client.sweep(sweep_id)["trials"]).get("COMPLETE", 0) + c.get("PRUNED", 0) >= 3,
             120, what="three trials done")
    server.kill()
    server.start()
    sweep = final(server.client(), sweep_id)
    assert sweep["state"] == "SUCCEEDED", sweep["reason"]
    trials = server.client().sweep_trials(sweep_id)
    assert [t["number"] for t in trials] == list(range(8))
    assert len({t["job_id"] for t in trials}) == 8
    assert len({tuple(sorted(t["params"].items())) for t in trials}) == 8  # no trial asked twice
    assert all(t["state"] in ("COMPLETE", "PRUNED") for t in trials)
    jobs = server.client().jobs()
    assert len(jobs) == 8  # no trial job submitted and then lost track of
    assert all(j["state"] in TERMINAL for j in jobs)
