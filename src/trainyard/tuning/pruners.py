"""Early-stopping names in a sweep spec → Optuna pruners (Optuna decides what to stop)."""

from __future__ import annotations

import optuna
from optuna.pruners import BasePruner

from trainyard.tuning.spec import EarlyStopping


def make_pruner(es: EarlyStopping) -> BasePruner:
    if es.type == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=es.min_resource, reduction_factor=es.reduction_factor)
    if es.type == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=es.min_resource, max_resource=es.max_resource or "auto",
            reduction_factor=es.reduction_factor)
    if es.type == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=es.n_startup_trials, n_warmup_steps=es.min_resource)
    return optuna.pruners.NopPruner()
