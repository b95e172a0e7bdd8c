"""Sampler names in a sweep spec → Optuna samplers (Optuna does the sampling)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import optuna
from optuna.samplers import BaseSampler, GridSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from trainyard.tuning.spec import SweepSpec


class AskTellGridSampler(GridSampler):
    """Optuna's grid sampler for ask/tell: the sweep's budget ends it, not `Study.stop`.

    GridSampler.after_trial stops an `optimize()` loop once the grid is done;
    under ask/tell there is none, and `Study.stop` raises. Which grid point a
    trial gets is still Optuna's: trial n takes point n of the seeded shuffle.
    """

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        return None


def make_sampler(spec: SweepSpec, seed: int) -> BaseSampler:
    """`seed` is the sweep's own for grid (its shuffle must match across rebuilds), else a fresh one."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if spec.sampler == "grid":
            return AskTellGridSampler(spec.grid(), seed=seed)
        if spec.sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if spec.sampler == "gp":
            return optuna.samplers.GPSampler(seed=seed)
        if spec.sampler == "cmaes":
            return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
        # constant_liar: trials still running count as bad guesses, so parallel asks spread out
        startup = min(10, max(3, (spec.max_trials or 10) // 4))
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, multivariate=True,
                                          constant_liar=True)
