"""The search-space language as Optuna distributions."""

from __future__ import annotations

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from trainyard.tuning.spec import CategoricalParam, FloatParam, IntParam, Param


def distribution(p: Param) -> BaseDistribution:
    if isinstance(p, FloatParam):
        return FloatDistribution(p.low, p.high, log=p.log, step=p.step)
    if isinstance(p, IntParam):
        return IntDistribution(p.low, p.high, log=p.log, step=p.step)
    assert isinstance(p, CategoricalParam)
    return CategoricalDistribution(p.values)


def distributions(search: dict[str, Param]) -> dict[str, BaseDistribution]:
    return {name: distribution(p) for name, p in search.items()}
