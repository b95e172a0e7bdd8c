"""The sweep spec a user writes, validated field by field before anything is stored.

```yaml
name: digits-sweep
job: job.yaml                 # the trial template (the CLI inlines the file)
metric: {name: val_loss, goal: minimize}
search:
  lr: {type: float, low: 1e-4, high: 1e-1, log: true}
  optimizer: {type: categorical, values: [sgd, adam]}
sampler: tpe                  # grid | random | tpe | gp | cmaes
early_stopping: {type: asha, min_resource: 1, reduction_factor: 3, resource: epoch}
max_trials: 40
parallelism: 4
```
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from trainyard.spec import NAME_PATTERN, JobSpec, SpecError, field_errors, parse_job_spec

SAMPLERS = ("grid", "random", "tpe", "gp", "cmaes")
PRUNERS = ("asha", "hyperband", "median", "none")
MAX_GRID = 10_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class FloatParam(_Strict):
    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: float | None = Field(None, gt=0)


class IntParam(_Strict):
    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = Field(1, ge=1)


class CategoricalParam(_Strict):
    type: Literal["categorical"]
    values: list[str | int | float | bool | None]


Param = FloatParam | IntParam | CategoricalParam
TypedParam = Annotated[Param, Field(discriminator="type")]
PARAM_TYPES: dict[str, type[Param]] = {"float": FloatParam, "int": IntParam, "categorical": CategoricalParam}


class Metric(_Strict):
    name: str = Field(min_length=1, max_length=250)
    goal: Literal["minimize", "maximize"] = "minimize"


class EarlyStopping(_Strict):
    type: str = "none"
    resource: str = Field("epoch", min_length=1, max_length=250,
                          description="Metric logged with each intermediate value: the budget so far.")
    min_resource: int = Field(1, ge=1)
    max_resource: int | None = Field(None, ge=1, description="hyperband only; default: learnt from trials.")
    reduction_factor: int = Field(3, ge=2)
    n_startup_trials: int = Field(5, ge=0, description="median only: trials finished before it prunes.")


class SweepSpec(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    job: dict[str, Any] = Field(description="The trial template: a JobSpec mapping.")
    metric: Metric
    search: dict[str, TypedParam]
    sampler: str = "tpe"
    early_stopping: EarlyStopping = EarlyStopping()
    max_trials: int | None = Field(None, ge=1, le=10_000)
    parallelism: int = Field(1, ge=1, le=1000)
    seed: int | None = Field(None, ge=0, le=2**31 - 1)

    @property
    def template(self) -> JobSpec:
        return JobSpec.model_validate(self.job)

    def grid(self) -> dict[str, list[Any]]:
        """Every value of each parameter; only for spaces check_grid accepted."""
        return {name: grid_values(p) for name, p in self.search.items()}

    @property
    def budget(self) -> int:
        """How many trials the sweep runs in all: max_trials, or the whole grid (whichever is less)."""
        if self.sampler == "grid":
            size = math.prod(grid_size(p) for p in self.search.values())
            return min(size, self.max_trials or size)
        assert self.max_trials is not None
        return self.max_trials


def grid_values(p: Param) -> list[Any]:
    """Every value of one parameter; only for parameters whose grid_size was checked first."""
    if isinstance(p, CategoricalParam):
        return list(p.values)
    if isinstance(p, IntParam):
        return list(range(p.low, p.high + 1, p.step))
    assert p.step is not None
    return [round(p.low + i * p.step, 12) for i in range(grid_size(p))]


def grid_size(p: Param) -> int:
    """How many values grid_values(p) makes, by arithmetic alone (a float range can be ~1e600 wide)."""
    if isinstance(p, CategoricalParam):
        return len(p.values)
    if isinstance(p, IntParam):
        return len(range(p.low, p.high + 1, p.step))
    assert p.step is not None
    steps = (p.high - p.low) / p.step + 1e-9
    if not math.isfinite(steps):  # past a float's range: count exactly
        return int((Fraction(p.high) - Fraction(p.low)) / Fraction(p.step)) + 1
    return int(math.floor(steps)) + 1


def _count(n: int) -> str:
    return str(n) if n < 10**12 else f"about 10^{len(str(n)) - 1}"


def _grid_errors(space: dict[str, Param]) -> list[dict[str, str]]:
    """The grid's size from its parameters' sizes, before any value is made: no point is built
    for a grid too big to run."""
    sizes = {name: grid_size(p) for name, p in space.items()}
    too_big = [name for name, n in sizes.items() if n > MAX_GRID]
    if too_big:
        return [{"field": f"search.{name}", "message": f"{_count(sizes[name])} values in one parameter; a grid "
                 f"has at most {MAX_GRID} points: raise its step or narrow its range"} for name in too_big]
    size = math.prod(sizes.values())
    if size > MAX_GRID:
        return [{"field": "search", "message": f"the grid has {_count(size)} points (more than {MAX_GRID}); "
                 "coarsen the steps"}]
    return []


def _param_errors(name: str, p: Param, sampler: str) -> list[dict[str, str]]:
    at = f"search.{name}"
    errors = []
    if isinstance(p, CategoricalParam):
        if not p.values:
            errors.append({"field": f"{at}.values", "message": "give at least one value to choose from"})
        return errors
    if not (math.isfinite(p.low) and math.isfinite(p.high)):
        errors.append({"field": f"{at}.low", "message": "low and high must be finite numbers"})
        return errors
    if p.low > p.high:
        errors.append({"field": f"{at}.low", "message":
                       f"low ({p.low:g}) must not be greater than high ({p.high:g}); swap them"})
    if p.log and p.low <= 0:
        errors.append({"field": f"{at}.low", "message":
                       f"a log-scale range needs low > 0 (got {p.low:g}); raise low or set log: false"})
    if p.log and (p.step not in (None, 1)):
        errors.append({"field": f"{at}.step", "message": "step cannot be used with log: true; drop one"})
    if sampler == "grid" and isinstance(p, FloatParam) and p.step is None:
        errors.append({"field": at, "message": "the grid sampler needs a finite set of values: give "
                       "this float a step, or make it categorical with values"})
    if p.step is not None and not errors and p.step > p.high - p.low and p.high != p.low:
        errors.append({"field": f"{at}.step", "message":
                       f"step ({p.step:g}) is wider than the range {p.low:g}..{p.high:g}"})
    return errors


def _parse_search(raw: Any, sampler: str) -> tuple[dict[str, Param], list[dict[str, str]]]:
    if not isinstance(raw, dict) or not raw:
        return {}, [{"field": "search", "message":
                     "give at least one parameter, e.g. lr: {type: float, low: 1e-4, high: 1e-1, log: true}"}]
    space: dict[str, Param] = {}
    errors: list[dict[str, str]] = []
    for name, body in raw.items():
        at = f"search.{name}"
        kind = body.get("type") if isinstance(body, dict) else None
        if kind not in PARAM_TYPES:
            errors.append({"field": f"{at}.type", "message":
                           f"unknown parameter type {kind!r}; choose one of float, int, categorical"})
            continue
        try:
            p = PARAM_TYPES[kind].model_validate(body)
        except ValidationError as exc:
            errors += [{"field": f"{at}.{e['field']}", "message": e["message"]} for e in field_errors(exc)]
            continue
        errors += _param_errors(name, p, sampler)
        space[name] = p
    return space, errors


def _check_choices(data: dict[str, Any]) -> list[dict[str, str]]:
    errors = []
    sampler = data.get("sampler", "tpe")
    if sampler not in SAMPLERS:
        errors.append({"field": "sampler", "message":
                       f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}"})
    stopping = data.get("early_stopping")
    kind = stopping.get("type", "none") if isinstance(stopping, dict) else "none"
    if kind not in PRUNERS:
        errors.append({"field": "early_stopping.type", "message":
                       f"unknown early stopping {kind!r}; choose one of {', '.join(PRUNERS)}"})
    if sampler != "grid" and data.get("max_trials") is None:
        errors.append({"field": "max_trials", "message":
                       f"required with sampler {sampler}: how many trials to run in all"})
    job = data.get("job")
    if isinstance(job, str):
        errors.append({"field": "job", "message": f"give the trial template as a mapping; `yard sweep` "
                       f"reads {job} for you, the API needs its contents"})
    elif isinstance(job, dict):
        try:
            parse_job_spec(job)
        except SpecError as exc:
            errors += [{"field": f"job.{e['field']}", "message": e["message"]} for e in exc.errors]
    return errors


def parse_sweep_spec(data: Any) -> SweepSpec:
    """A SweepSpec, or SpecError naming every bad field and what to do about it."""
    if not isinstance(data, dict):
        raise SpecError([{"field": "(spec)", "message": "a sweep spec must be a mapping of fields"}])
    errors = _check_choices(data)
    sampler = data.get("sampler", "tpe")
    space, space_errors = _parse_search(data.get("search"), sampler)
    errors += space_errors
    try:
        spec = SweepSpec.model_validate({**data, "search": space})
    except ValidationError as exc:
        taken = {e["field"] for e in errors}
        errors += [e for e in field_errors(exc)
                   if e["field"] not in taken and not e["field"].startswith(("search.", "job."))]
        spec = None
    if spec is not None and not errors and spec.sampler == "grid":
        errors += _grid_errors(spec.search)
    if errors or spec is None:
        raise SpecError(errors)
    return spec
