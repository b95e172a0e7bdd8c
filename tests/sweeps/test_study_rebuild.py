"""A sweep's study rebuilt from stored trials carries on as if never interrupted."""

from __future__ import annotations

import itertools

from trainyard.tuning import SweepStudy, TrialRecord, parse_sweep_spec

JOB = {"name": "trial", "entrypoint": ["python", "train.py"]}


def spec(**fields):
    base = {"name": "s", "job": JOB, "metric": {"name": "loss"}, "max_trials": 20, "parallelism": 2,
            "search": {"x": {"type": "float", "low": -5, "high": 5},
                       "y": {"type": "float", "low": -5, "high": 5}}}
    return parse_sweep_spec({**base, **fields})


def loss(params: dict) -> float:
    return (params["x"] - 2) ** 2 + (params["y"] + 1) ** 2


def run(study: SweepStudy, n: int, records: list[TrialRecord], leave_running: int = 0) -> None:
    """Ask n trials; complete all but the last `leave_running`, recording what the store would keep."""
    for i in range(n):
        number, params = study.ask()
        rec = TrialRecord(number=number, params=params, state="RUNNING")
        if i < n - leave_running:
            rec.state, rec.value = "COMPLETE", loss(params)
            rec.intermediate = {1: rec.value + 1, 2: rec.value}
            study.report(number, [(1, rec.value + 1), (2, rec.value)])
            rec.system_attrs = study.tell(number, "COMPLETE", rec.value)
        records.append(rec)


def test_rebuilt_study_continues_numbering_and_never_repeats_a_trial():
    s = spec(sampler="random", seed=7)
    records: list[TrialRecord] = []
    run(SweepStudy("sw", s, 7, []), 5, records, leave_running=2)
    rebuilt = SweepStudy("sw", s, 7, records)
    assert rebuilt.size == 5 and rebuilt.live() == {3, 4}
    number, params = rebuilt.ask()
    assert number == 5
    assert params not in [r.params for r in records]  # not the first study's draws replayed
    complete = [t for t in rebuilt.study.trials if t.state.name == "COMPLETE"]
    assert [t.params for t in complete] == [r.params for r in records[:3]]
    rebuilt.tell(3, "COMPLETE", 0.5)  # a re-registered running trial can still be told
    assert rebuilt.study.trials[3].value == 0.5


def test_grid_covers_exactly_its_grid_across_rebuilds():
    s = spec(sampler="grid", seed=3, max_trials=None, search={
        "x": {"type": "int", "low": 0, "high": 2}, "y": {"type": "categorical", "values": [-1, 1]}})
    assert s.budget == 6
    records: list[TrialRecord] = []
    run(SweepStudy("sw", s, 3, []), 2, records, leave_running=1)
    study = SweepStudy("sw", s, 3, records)  # server restarted: one done, one running
    run(study, 2, records)
    study = SweepStudy("sw", s, 3, records)  # and again
    run(study, 2, records)
    seen = [(r.params["x"], r.params["y"]) for r in records]
    assert sorted(seen) == sorted(itertools.product([0, 1, 2], [-1, 1]))


def test_pruner_state_survives_a_rebuild():
    s = spec(sampler="random", seed=1,
             early_stopping={"type": "asha", "min_resource": 1, "reduction_factor": 3})
    records: list[TrialRecord] = []
    first = SweepStudy("sw", s, 1, [])
    run(first, 6, records)
    number, params = first.ask()
    records.append(TrialRecord(number=number, params=params, state="RUNNING"))
    bad = [(1, 1e6)]
    assert first.report(number, bad) == 1  # far worse than every trial at epoch 1: pruned
    rebuilt = SweepStudy("sw", s, 1, records)
    assert rebuilt.report(number, bad) == 1  # the same decision: the rung values came back
    fresh = SweepStudy("sw", s, 1, [])
    n, _ = fresh.ask()
    assert fresh.report(n, bad) is None  # with nothing to compare against, ASHA promotes


def test_a_pruned_trial_keeps_the_value_it_was_stopped_at():
    s = spec(sampler="tpe", seed=2,
             early_stopping={"type": "median", "n_startup_trials": 1, "min_resource": 1})
    records: list[TrialRecord] = []
    study = SweepStudy("sw", s, 2, [])
    run(study, 3, records)
    number, params = study.ask()
    assert study.report(number, [(1, 1e6), (2, 1e6)]) == 2
    study.tell(number, "PRUNED")
    assert study.study.trials[number].state.name == "PRUNED"
    assert study.study.trials[number].value == 1e6
