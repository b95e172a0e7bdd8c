"""One sweep's Optuna study, held in memory and rebuilt from the store's trials.

The store is the source of truth (DESIGN.md): a study is never persisted on
its own. After a restart, finished trials are added back with their values,
intermediate values and the system attributes the sampler and pruner wrote;
running ones are re-registered with their parameters fixed. Trial numbers
are the store's, so nothing is lost, duplicated or asked twice.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import Trial, TrialState, create_trial

from trainyard.tuning.pruners import make_pruner
from trainyard.tuning.samplers import make_sampler
from trainyard.tuning.space import distributions
from trainyard.tuning.spec import SweepSpec

optuna.logging.set_verbosity(logging.WARNING)

# how a trial's end is told to the sampler
OPTUNA_STATE = {"COMPLETE": TrialState.COMPLETE, "PRUNED": TrialState.PRUNED,
                "FAILED": TrialState.FAIL, "CANCELLED": TrialState.FAIL}


@dataclass
class TrialRecord:
    """What the store keeps of one trial, as the study needs it."""

    number: int
    params: dict[str, Any]
    state: str  # RUNNING, COMPLETE, PRUNED, FAILED, CANCELLED
    value: float | None = None
    intermediate: dict[int, float] = field(default_factory=dict)  # resource -> metric value
    system_attrs: dict[str, Any] = field(default_factory=dict)


class SweepStudy:
    """Ask for parameters, report intermediate values, tell outcomes: Optuna's ask/tell."""

    def __init__(self, sweep_id: str, spec: SweepSpec, seed: int, records: Iterable[TrialRecord] = ()):
        self.spec = spec
        self.distributions = distributions(spec.search)
        records = sorted(records, key=lambda r: r.number)
        # a rebuilt study must not replay the first study's random draws; grid keeps its shuffle
        sampler_seed = seed if spec.sampler == "grid" else (seed + 7919 * len(records)) % 2**31
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.study = optuna.create_study(
                study_name=sweep_id,  # hyperband's brackets hash the study name: keep it stable
                direction=spec.metric.goal,
                sampler=make_sampler(spec, sampler_seed),
                pruner=make_pruner(spec.early_stopping),
            )
        self._live: dict[int, Trial] = {}
        self._reported: dict[int, set[int]] = {}
        for rec in records:
            self._restore(rec)

    def _restore(self, rec: TrialRecord) -> None:
        if len(self.study.get_trials(deepcopy=False)) != rec.number:
            raise ValueError(f"trial {rec.number} is out of order; the store's trials must be 0..n-1")
        if rec.state == "RUNNING":
            self.study.enqueue_trial(rec.params)
            trial = self.study.ask(self.distributions)
            self._live[rec.number] = trial
            self._reported[rec.number] = set()
            return
        state = OPTUNA_STATE[rec.state]
        value = rec.value if state in (TrialState.COMPLETE, TrialState.PRUNED) else None
        self.study.add_trial(create_trial(
            state=state, value=value, params=rec.params, distributions=self.distributions,
            intermediate_values=rec.intermediate, system_attrs=rec.system_attrs))

    @property
    def size(self) -> int:
        return len(self.study.get_trials(deepcopy=False))

    def ask(self) -> tuple[int, dict[str, Any]]:
        """The next trial's number and parameters."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            trial = self.study.ask(self.distributions)
        self._live[trial.number] = trial
        self._reported[trial.number] = set()
        return trial.number, dict(trial.params)

    def report(self, number: int, points: Iterable[tuple[int, float]]) -> int | None:
        """Report new (resource, value) points in order; the resource at which to prune, if any.

        The pruner is asked once, at the newest point, as a training loop that
        reports sparsely would ask it: points seen late are not pruned in the past.
        """
        trial = self._live[number]
        reported = self._reported[number]
        newest = None
        for resource, value in points:
            if resource in reported:
                continue
            reported.add(resource)
            trial.report(value, resource)
            newest = resource
        if newest is not None and trial.should_prune():
            return newest
        return None

    def tell(self, number: int, state: str, value: float | None = None) -> dict[str, Any]:
        """Finish a live trial; returns the system attributes to store with it."""
        trial = self._live.pop(number)
        self._reported.pop(number, None)
        opt_state = OPTUNA_STATE[state]
        frozen = self.study.tell(trial, value if opt_state == TrialState.COMPLETE else None,
                                 state=opt_state)
        return jsonable(frozen.system_attrs)

    def live(self) -> set[int]:
        return set(self._live)


def jsonable(attrs: dict[str, Any]) -> dict[str, Any]:
    """System attributes as JSON keeps them (Optuna's own RDB storage needs the same)."""
    out = {}
    for key, value in attrs.items():
        if key == "fixed_params":
            continue  # only how a rebuilt trial got its params back; not the sampler's state
        if isinstance(value, tuple):
            value = list(value)
        out[key] = value
    return out
