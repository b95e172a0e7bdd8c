"""The search-space language: what it accepts, what Optuna gets, and what it refuses (by field)."""

from __future__ import annotations

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from trainyard.spec import SpecError
from trainyard.tuning import parse_sweep_spec
from trainyard.tuning.space import distributions

JOB = {"name": "trial", "entrypoint": ["python", "train.py"]}


def sweep(**fields) -> dict:
    base = {"name": "s", "job": JOB, "metric": {"name": "val_loss"}, "max_trials": 10,
            "search": {"lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True}}}
    return {**base, **fields}


def refused(data: dict) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        parse_sweep_spec(data)
    return {e["field"]: e["message"] for e in info.value.errors}


def test_the_issue_example_space_becomes_optuna_distributions():
    spec = parse_sweep_spec(sweep(search={
        "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
        "hidden": {"type": "int", "low": 32, "high": 512},
        "dropout": {"type": "float", "low": 0.0, "high": 0.5},
        "optimizer": {"type": "categorical", "values": ["sgd", "adam"]},
    }, sampler="tpe", early_stopping={"type": "asha", "min_resource": 1, "reduction_factor": 3,
                                      "resource": "epoch"}, parallelism=4, max_trials=40))
    dists = distributions(spec.search)
    assert dists["lr"] == FloatDistribution(1e-4, 1e-1, log=True)
    assert dists["hidden"] == IntDistribution(32, 512)
    assert dists["dropout"] == FloatDistribution(0.0, 0.5)
    assert dists["optimizer"] == CategoricalDistribution(["sgd", "adam"])
    assert spec.budget == 40


def test_low_above_high_is_refused_naming_the_field():
    errors = refused(sweep(search={"hidden": {"type": "int", "low": 512, "high": 32}}))
    assert "low (512) must not be greater than high (32)" in errors["search.hidden.low"]


def test_empty_categorical_is_refused_naming_the_field():
    errors = refused(sweep(search={"optimizer": {"type": "categorical", "values": []}}))
    assert errors["search.optimizer.values"] == "give at least one value to choose from"


def test_unknown_sampler_is_refused_with_the_choices():
    errors = refused(sweep(sampler="bayes"))
    assert errors["sampler"] == "unknown sampler 'bayes'; choose one of grid, random, tpe, gp, cmaes"


def test_every_bad_field_is_reported_at_once():
    errors = refused(sweep(sampler="nope", early_stopping={"type": "sometimes"}, parallelism=0,
                           search={"lr": {"type": "float", "low": 0, "high": 1, "log": True},
                                   "act": {"type": "choice", "values": ["relu"]}}))
    assert set(errors) == {"sampler", "early_stopping.type", "parallelism", "search.lr.low",
                           "search.act.type"}
    assert "log-scale range needs low > 0" in errors["search.lr.low"]


def test_grid_needs_a_finite_set_and_covers_it():
    errors = refused(sweep(sampler="grid", search={"dropout": {"type": "float", "low": 0, "high": 0.5}}))
    assert "needs a finite set" in errors["search.dropout"]
    spec = parse_sweep_spec(sweep(sampler="grid", max_trials=None, search={
        "dropout": {"type": "float", "low": 0, "high": 0.5, "step": 0.25},
        "hidden": {"type": "int", "low": 32, "high": 64, "step": 32},
        "optimizer": {"type": "categorical", "values": ["sgd", "adam"]}}))
    assert spec.grid() == {"dropout": [0.0, 0.25, 0.5], "hidden": [32, 64], "optimizer": ["sgd", "adam"]}
    assert spec.budget == 12


def test_max_trials_is_required_except_for_grid_and_the_template_is_checked():
    assert "required with sampler random" in refused(sweep(sampler="random", max_trials=None))["max_trials"]
    errors = refused(sweep(job={"name": "trial"}))
    assert errors["job.entrypoint"] == "required field is missing"
    assert "the API needs its contents" in refused(sweep(job="job.yaml"))["job"]


def test_unknown_fields_are_refused():
    assert refused(sweep(trials=5))["trials"] == "unknown field; remove it or check its spelling"
    errors = refused(sweep(search={"lr": {"type": "float", "low": 0.1, "high": 1, "scale": "log"}}))
    assert errors["search.lr.scale"] == "unknown field; remove it or check its spelling"
