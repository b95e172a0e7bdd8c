"""What a model declares (model.yaml): its team, project, description and evaluation gate.

```yaml
name: digits-classifier
team: vision                          # optional: your only team, else `default`
project: default
description: MLP on scikit-learn's digits
evaluation:
  entrypoint: [python, evaluate.py]   # run as a platform job against the snapshot below
  code: "."                           # relative to this file; snapshotted like a job's code
  dataset: digits@v1
  rule: val_acc >= 0.95 and val_acc >= champion.val_acc - 0.002
  gates: [production]                 # aliases a version may take only after passing
```
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from trainyard.registry import rules
from trainyard.spec import NAME_PATTERN, SNAPSHOT_PATTERN, Resources, SpecError, bounded_document, field_errors


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class EvaluationSpec(_Strict):
    entrypoint: list[str] = Field(min_length=1, description="argv run in the evaluation's code directory.")
    code: str = Field(".", description="Directory snapshotted as the evaluation's code.")
    dataset: str = Field(description="The snapshot NAME@vN the evaluation reads, of the model's project.")
    rule: str = Field(description="e.g. val_acc >= 0.95 and val_acc >= champion.val_acc - 0.002")
    gates: list[str] = Field(["production"], description="Aliases a version may take only after passing.")
    hyperparameters: dict[str, Any] = {}
    resources: Resources = Resources()
    team: str | None = Field(None, pattern=NAME_PATTERN, description=(
        "The evaluation job's team: always the model's own (the default); naming another is refused."))
    max_restarts: int = Field(0, ge=0, le=10)
    heartbeat_timeout_s: float = Field(60.0, ge=1.0, le=86400.0)

    @field_validator("rule")
    @classmethod
    def _parsed_rule(cls, value: str) -> str:
        try:
            return rules.parse(value).text
        except rules.RuleError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("hyperparameters")
    @classmethod
    def _json_hyperparameters(cls, value: dict[str, Any]) -> dict[str, Any]:
        return bounded_document(value, "hyperparameters")

    @field_validator("dataset")
    @classmethod
    def _snapshot(cls, value: str) -> str:
        if not re.match(SNAPSHOT_PATTERN, value):
            raise ValueError(f"{value!r} is not a snapshot; name one as NAME@vN, e.g. digits@v1")
        return value

    @field_validator("gates")
    @classmethod
    def _alias_names(cls, value: list[str]) -> list[str]:
        for alias in value:
            if not re.match(NAME_PATTERN, alias) or alias.startswith("v") and alias[1:].isdigit():
                raise ValueError(f"{alias!r} is not an alias name (lowercase letters, digits, '.', '_', "
                                 "'-'; not v<number>)")
        return value


class ModelSpec(_Strict):
    name: str = Field(pattern=NAME_PATTERN, description="Lowercase letters, digits, '.', '_', '-'.")
    team: str | None = Field(None, pattern=NAME_PATTERN, description=(
        "The team that owns a new model (its viewers read it, its members change it); default: your only "
        "team, else `default`. A model never moves between teams."))
    project: str = Field("default", pattern=NAME_PATTERN)
    description: str = Field("", max_length=10_000)
    evaluation: EvaluationSpec | None = None


def parse_model_spec(data: Any) -> ModelSpec:
    try:
        return ModelSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(field_errors(exc)) from None
