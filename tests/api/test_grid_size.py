"""A grid sweep's size is counted from its parameters before any value is made."""

from __future__ import annotations

import time

import pytest

from trainyard.spec import SpecError
from trainyard.tuning import parse_sweep_spec
from trainyard.tuning.spec import grid_size

TEMPLATE = {"name": "trial", "entrypoint": ["python", "objective.py"],
            "resources": {"workers": 1, "cpus_per_worker": 0.5, "memory_gb": 0.25}}


def _grid(search: dict) -> dict:
    return {"name": "grid", "job": TEMPLATE, "metric": {"name": "loss"}, "sampler": "grid", "search": search}


def test_grid_over_150_million_integers_is_refused_in_under_a_second(server):
    spec = _grid({"seed": {"type": "int", "low": 0, "high": 150_000_000}})
    t0 = time.monotonic()
    resp = server.http.post("/v1/sweeps", json={"spec": spec}, timeout=60)
    assert time.monotonic() - t0 < 1
    assert resp.status_code == 422, resp.text
    [error] = resp.json()["errors"]
    assert error["field"] == "search.seed"
    assert "150000001 values" in error["message"] and "10000" in error["message"]
    assert server.http.get("/v1/sweeps").json()["items"] == []


@pytest.mark.parametrize("search, field", [
    ({"lr": {"type": "float", "low": 0.0, "high": 1e300, "step": 1e-300}}, "search.lr"),
    ({"a": {"type": "int", "low": 0, "high": 999}, "b": {"type": "int", "low": 0, "high": 999}}, "search"),
    ({"a": {"type": "int", "low": -(2**62), "high": 2**62, "step": 3}}, "search.a"),
])
def test_grids_too_large_are_refused_by_arithmetic(search, field):
    t0 = time.monotonic()
    with pytest.raises(SpecError) as err:
        parse_sweep_spec(_grid(search))
    assert time.monotonic() - t0 < 0.5
    assert [e["field"] for e in err.value.errors] == [field]


def test_grid_size_matches_the_values_it_stands_for():
    spec = parse_sweep_spec(_grid({
        "lr": {"type": "float", "low": 0.1, "high": 0.3, "step": 0.1},
        "layers": {"type": "int", "low": 1, "high": 9, "step": 4},
        "act": {"type": "categorical", "values": ["relu", "gelu"]},
    }))
    assert spec.grid() == {"lr": [0.1, 0.2, 0.3], "layers": [1, 5, 9], "act": ["relu", "gelu"]}
    assert [grid_size(p) for p in spec.search.values()] == [3, 3, 2]
    assert spec.budget == 18
