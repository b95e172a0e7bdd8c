"""Sweeps: the search-space language, and Optuna's samplers and pruners behind ask/tell."""

from trainyard.tuning.spec import SweepSpec, parse_sweep_spec
from trainyard.tuning.study import SweepStudy, TrialRecord

__all__ = ["SweepSpec", "SweepStudy", "TrialRecord", "parse_sweep_spec"]
