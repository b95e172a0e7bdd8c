"""The contract: every spec a user writes, validated before anything is stored.

Pure: imports nothing of ours. The api, the CLI, the control loop and the
runtime all read these models, so a field means the same thing everywhere.
"""

from __future__ import annotations

import enum
import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

NAME_PATTERN = r"^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$"
SNAPSHOT_PATTERN = r"^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?@v[1-9][0-9]{0,8}$"  # a dataset snapshot: NAME@vN
ENTRYPOINT_EXAMPLE = "entrypoint: [python, train.py]"  # the line a spec error shows a user to write
ENV_NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_]{0,127}"
MAX_ARGS = 256  # words in an entrypoint
MAX_ENV = 256  # variables in a job's env
MAX_LABELS = 64
MAX_TEXT = 32_768  # characters in one entrypoint word or env value
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# An env name with one of these in it holds a credential: a new spec must take its value from a secret.
_SECRET_LOOKING = re.compile(r"TOKEN|KEY|PASSWORD|SECRET", re.IGNORECASE)
NEW_SPEC = "new_spec"  # validation context: a spec being submitted, not one read back from the store


def _plain_text(what: str, text: str, limit: int = MAX_TEXT) -> None:
    """Refuse what a process launch or a log line cannot carry: control characters (NUL ends a C
    string; a newline forges log lines) and unbounded text."""
    if len(text) > limit:
        raise ValueError(f"{what} is {len(text)} characters long; at most {limit}")
    found = _CONTROL.search(text)
    if found:
        raise ValueError(f"{what} contains the control character {found.group()!r} at position "
                         f"{found.start()}; remove it")

# Bounds of numbers a request may carry: what the store's integer columns hold.
INT32_MAX = 2**31 - 1  # attempt numbers, versions, pids
INT64_MAX = 2**63 - 1  # steps, byte offsets
MAX_WORKERS = 4096  # ranks in one gang: a rank is 0 to MAX_WORKERS - 1
MAX_VERSION = INT32_MAX
# Free-form JSON a user hands in (hyperparameters, params): how deep and how large it may be.
MAX_DOCUMENT_DEPTH = 32
MAX_DOCUMENT_BYTES = 64 * 1024  # hyperparameters travel to each rank in one environment variable
_VERSION = re.compile(r"v?([0-9]+)")  # ASCII digits only: "v³" is not a version number


class _Strict(BaseModel):
    """Unknown fields are an error: a typo must not silently become a default. NaN and infinities
    are refused: no field means them, and JSON cannot carry them back."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Resources(_Strict):
    workers: int = Field(1, ge=1, le=4096, description="Ranks in the gang, launched together.")
    cpus_per_worker: float = Field(1.0, gt=0, le=1024)
    gpus_per_worker: int = Field(0, ge=0, le=16)
    memory_gb: float = Field(1.0, gt=0, le=4096, description="Memory per worker, GiB.")
    gpu_type: str | None = Field(None, min_length=1, max_length=64, description="e.g. h100; any when unset.")

    @property
    def total_cpus(self) -> float:
        return self.workers * self.cpus_per_worker

    @property
    def total_gpus(self) -> int:
        return self.workers * self.gpus_per_worker

    @property
    def total_memory_gb(self) -> float:
        return self.workers * self.memory_gb


class KeepBest(_Strict):
    metric: str = Field(min_length=1)
    mode: Literal["min", "max"] = "min"
    count: int = Field(1, ge=1, le=1000)


class CheckpointPolicy(_Strict):
    every_steps: int | None = Field(None, ge=1)
    every_seconds: float | None = Field(None, gt=0)
    keep_last: int = Field(3, ge=1, le=1000)
    keep_best: KeepBest | None = None
    trusted_pickle: bool = Field(
        False, description="Restore with full pickle (torch.load weights_only=False), for checkpoints "
        "that hold more than tensors and plain containers (numpy arrays, custom classes). Unpickling runs "
        "code: turn it on only if you trust everything that can write this job's checkpoints. Off (the "
        "default), such a checkpoint fails restore with a message saying so.")

    def due(self, step: int, last_step: int | None, seconds_since_last: float) -> bool:
        """Whether a checkpoint is due at `step` given the last one taken."""
        since = step - (last_step or 0)  # a fresh run's first save comes after every_steps, not at step 1
        if self.every_steps is not None and since >= self.every_steps:
            return True
        return self.every_seconds is not None and seconds_since_last >= self.every_seconds

    def retained(self, checkpoints: list[CheckpointSummary]) -> set[int]:
        """Steps to keep: the newest `keep_last` plus the best `keep_best.count` by metric."""
        by_step = sorted(checkpoints, key=lambda c: c.step, reverse=True)
        keep = {c.step for c in by_step[: self.keep_last]}
        if self.keep_best is not None:
            kb = self.keep_best
            scored = [c for c in checkpoints if kb.metric in c.metrics]
            scored.sort(key=lambda c: c.metrics[kb.metric], reverse=kb.mode == "max")
            keep |= {c.step for c in scored[: kb.count]}
        return keep


class CheckpointSummary(_Strict):
    """What retention needs to know of one committed checkpoint."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=True)  # a diverged loss is NaN

    step: int
    metrics: dict[str, float] = {}


CHECKPOINT_MANIFEST = "MANIFEST.json"  # written last; a checkpoint directory without it was never committed


def checkpoint_dir_name(attempt: int, step: int) -> str:
    """One checkpoint's directory inside its job's root: the server and the ranks derive it alike."""
    return f"a{attempt:03d}-s{step:09d}"


def parse_checkpoint_dir_name(name: str) -> tuple[int, int] | None:
    """(attempt, step) of a name `checkpoint_dir_name` made; None for any other name."""
    found = re.fullmatch(r"a(\d{3,})-s(\d{9,})", name)
    if found is None:
        return None
    attempt, step = int(found[1]), int(found[2])
    return (attempt, step) if checkpoint_dir_name(attempt, step) == name else None


class SecretRef(_Strict):
    """An env value kept as one of the job's team's secrets (`yard secrets set`): the spec holds only
    its name; the ranks get its value at launch, and their logs show it as `[secret NAME]`."""

    secret: str = Field(pattern=f"^{ENV_NAME_PATTERN}$", description="The name of a secret of the job's team.")


def secret_in_clear(key: str, team: str | None) -> str:
    """Why a plain value under a secret-looking env name is refused, and the form to write instead."""
    return (f"{key} looks like a credential, so its value may not be written in a spec (specs are shown "
            f"and stored in clear): store it with `yard secrets set {team or '<team>'} {key}` (it reads the "
            f"value from stdin) and write `{key}: {{secret: {key}}}` under env")


class JobSpec(_Strict):
    name: str = Field(pattern=NAME_PATTERN, description="Lowercase letters, digits, '.', '_', '-'.")
    team: str = Field("default", pattern=NAME_PATTERN)
    project: str = Field("default", pattern=NAME_PATTERN)
    experiment: str | None = Field(None, pattern=NAME_PATTERN)
    entrypoint: list[str] = Field(min_length=1, description="argv run in the code directory.")
    code: str = Field(".", description="Directory snapshotted as the job's code.")
    dataset: str | None = Field(None, description="A dataset snapshot NAME@vN of the job's project; each rank "
                                "gets a verified read-only copy at ctx.dataset_dir.")
    hyperparameters: dict[str, Any] = {}
    resources: Resources = Resources()
    checkpoint: CheckpointPolicy = CheckpointPolicy()
    max_restarts: int = Field(3, ge=0, le=100)
    heartbeat_timeout_s: float = Field(60.0, ge=1.0, le=86400.0)
    priority: str = Field("normal", pattern=NAME_PATTERN,
                          description="A priority class: low, normal, high, critical, or one configured.")
    preemptible: bool = Field(False, description="May be stopped and resumed from its checkpoint: runs in "
                              "backfill gaps and on spot, may be moved to free whole nodes for a larger "
                              "job, and gives way, just after a checkpoint, to same-class work at least 4x "
                              "shorter (in its team, or any team while it borrows quota). Any job may be "
                              "preempted by a higher priority class.")
    allow_spot: bool = Field(False, description="May run on spot nodes, which can be reclaimed.")
    expected_duration_s: float | None = Field(None, gt=0, description="Lets backfill fit it into gaps.")
    labels: dict[str, str] = Field({}, max_length=MAX_LABELS)
    env: dict[str, str | SecretRef] = Field(
        {}, max_length=MAX_ENV, description="Variables every rank gets, on top of the platform's own: a "
        "value, or `{secret: NAME}` for a secret of the job's team (names with TOKEN, KEY, PASSWORD or SECRET "
        "in them must be secrets).")

    @field_validator("entrypoint")
    @classmethod
    def _entrypoint_words(cls, value: list[str]) -> list[str]:
        if not value or not value[0].strip():
            raise ValueError(f"entrypoint must start with a program, e.g. {ENTRYPOINT_EXAMPLE}")
        if len(value) > MAX_ARGS:
            raise ValueError(f"entrypoint has {len(value)} words; at most {MAX_ARGS}")
        for i, word in enumerate(value):
            _plain_text(f"entrypoint word {i}", word)
        return value

    @field_validator("dataset")
    @classmethod
    def _snapshot_ref(cls, value: str | None) -> str | None:
        if value is not None and not re.match(SNAPSHOT_PATTERN, value):
            raise ValueError(f"{value!r} is not a snapshot; name one as NAME@vN, e.g. digits@v1 "
                             "(see `yard datasets list`)")
        return value

    @field_validator("hyperparameters")
    @classmethod
    def _json_hyperparameters(cls, value: dict[str, Any]) -> dict[str, Any]:
        return bounded_document(value, "hyperparameters")

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str | SecretRef], info: ValidationInfo) -> dict[str, str | SecretRef]:
        for key, text in value.items():
            if not re.fullmatch(ENV_NAME_PATTERN, key):
                raise ValueError(f"env name {key!r} is not a valid variable name: use ASCII letters, "
                                 "digits and '_', not starting with a digit (at most 128)")
            if key.startswith("TRAINYARD_") or key in RESERVED_ENV:
                raise ValueError(f"env name {key!r} is set by trainyard; choose another name")
            if isinstance(text, SecretRef):
                continue
            _plain_text(f"env {key}", text)
            if _SECRET_LOOKING.search(key) and (info.context or {}).get(NEW_SPEC):  # never echoes the value
                error = PydanticCustomError("secret_in_clear", secret_in_clear(key, info.data.get("team")))
                raise ValidationError.from_exception_data("env", [InitErrorDetails(type=error, loc=(key,),
                                                                                   input=key)])
        return value

    @property
    def secret_env(self) -> dict[str, str]:
        """Env names whose values are the team's secrets -> the secrets' names."""
        return {k: v.secret for k, v in self.env.items() if isinstance(v, SecretRef)}

    @property
    def plain_env(self) -> dict[str, str]:
        return {k: v for k, v in self.env.items() if isinstance(v, str)}

    @field_validator("labels")
    @classmethod
    def _label_text(cls, value: dict[str, str]) -> dict[str, str]:
        for key, text in value.items():
            _plain_text("label name", key, limit=128)
            _plain_text(f"label {key}", text, limit=1024)
        return value


class TeamSpec(_Strict):
    """A team's nominal quota and what it may borrow from its cohort (None: unlimited)."""

    name: str = Field(pattern=NAME_PATTERN)
    gpus: int | None = Field(None, ge=0, le=INT32_MAX)
    cpus: float | None = Field(None, ge=0)
    weight: float = Field(1.0, gt=0, description="Share of what is left, by dominant resource.")
    cohort: str | None = Field(None, pattern=NAME_PATTERN)
    borrowing_limit_gpus: int | None = Field(None, ge=0, le=INT32_MAX)
    borrowing_limit_cpus: float | None = Field(None, ge=0)


DEFAULT_PRIORITY_CLASSES = {"low": 0, "normal": 1, "high": 2, "critical": 3}


class SchedulingSpec(_Strict):
    """The operator's file: `yard server --teams teams.yaml`."""

    teams: list[TeamSpec] = []
    priority_classes: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_PRIORITY_CLASSES))

    @field_validator("teams")
    @classmethod
    def _unique_teams(cls, value: list[TeamSpec]) -> list[TeamSpec]:
        names = [t.name for t in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"team {dupes[0]!r} is listed twice; keep one entry per team")
        return value


RESERVED_ENV = frozenset(
    {"RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
     "CUDA_VISIBLE_DEVICES"}
)


class JobState(enum.StrEnum):
    QUEUED = "QUEUED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    RESTARTING = "RESTARTING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})


class AttemptState(enum.StrEnum):
    """One launch of a job's gang: LAUNCHING, then RUNNING while it owns the job, then how it ended."""

    LAUNCHING = "LAUNCHING"  # recorded before any process starts; RUNNING once the backend's handle is
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    STOPPED = "STOPPED"  # cancelled
    PREEMPTED = "PREEMPTED"

    @property
    def owns_job(self) -> bool:
        """Its ranks may write: it is the job's current attempt and has not ended."""
        return self in (AttemptState.LAUNCHING, AttemptState.RUNNING)


class WorkerState(enum.StrEnum):
    """One rank of an attempt, as the rank and the backend last reported it."""

    STARTING = "STARTING"  # launched, no heartbeat yet
    RUNNING = "RUNNING"
    EXITED = "EXITED"
    LOST = "LOST"  # gone without a recorded exit
    KILLED = "KILLED"  # its gang was stopped or failed around it

    @property
    def live(self) -> bool:
        return self in (WorkerState.STARTING, WorkerState.RUNNING)


class CheckpointState(enum.StrEnum):
    COMMITTED = "COMMITTED"  # every file durable, manifest written last: restorable
    CORRUPT = "CORRUPT"  # failed verification on restore
    DELETING = "DELETING"  # left the retention policy; the store let go, its files are being removed
    DELETED = "DELETED"  # outside the retention policy; its files are removed


class SpecError(ValueError):
    """A spec that cannot be accepted; `errors` name each field and what to do."""

    def __init__(self, errors: list[dict[str, str]]):
        self.errors = errors
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    """pydantic's errors as [{field, message}] with the field as a dotted path."""
    out = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(spec)"
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown field; remove it or check its spelling"
        elif err["type"] == "missing":
            message = "required field is missing"
        elif field == "entrypoint" and err["type"] == "too_short":
            message = f"give the command to run as a list, e.g. {ENTRYPOINT_EXAMPLE}"
        out.append({"field": field, "message": message.removeprefix("Value error, ")})
    return out


def version_number(text: str, field: str = "version") -> int | None:
    """The number of a version written N or vN (ASCII digits); None if `text` is not written so
    (it may be an alias). SpecError on `field` for a number no version can have."""
    m = _VERSION.fullmatch(text)
    if m is None:
        return None
    digits = m.group(1).lstrip("0")
    if len(digits) > 10 or int(digits or "0") > MAX_VERSION:
        raise SpecError([{"field": field, "message": f"{text!r}: a version is a number from 1 to {MAX_VERSION}, "
                                                      "written N or vN"}])
    return int(digits or "0")


def bounded_document(value: Any, what: str, max_depth: int = MAX_DOCUMENT_DEPTH,
                     max_bytes: int = MAX_DOCUMENT_BYTES) -> Any:
    """`value` if it is JSON nested at most `max_depth` deep and at most `max_bytes` encoded; else
    ValueError saying which bound it broke. Walks without recursion, so any depth is refused safely."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > max_depth:
                raise ValueError(f"{what} nest at most {max_depth} levels deep; flatten the deeper values")
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    try:
        size = len(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be JSON values: {exc}") from None
    if size > max_bytes:
        raise ValueError(f"{what} are {size} bytes as JSON; at most {max_bytes}: pass large values as a file "
                         "in the code or a dataset instead")
    return value


def parse_job_spec(data: Any) -> JobSpec:
    """A new job's spec (a submit, a sweep's template, a rerun, an evaluation), held to every rule. A
    stored spec is read back with `JobSpec.model_validate`, without the rules for new specs only: one
    written before a rule was added still loads."""
    try:
        return JobSpec.model_validate(data, context={NEW_SPEC: True})
    except ValidationError as exc:
        raise SpecError(field_errors(exc)) from None


def load_spec_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON spec file into a dict (not yet validated)."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise SpecError([{"field": "(file)", "message": f"cannot read {p}: {exc.strerror}"}]) from None
    try:
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise SpecError([{"field": "(file)", "message": f"{p} is not valid YAML/JSON: {exc}"}]) from None
    if not isinstance(data, dict):
        raise SpecError([{"field": "(file)", "message": f"{p} must hold a mapping of fields"}])
    return data



class LaunchEnv:
    """Environment variables a backend sets for each rank; the runtime reads them.

    Alongside torch.distributed's own: RANK, LOCAL_RANK, WORLD_SIZE,
    LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT.
    """

    SERVER = "TRAINYARD_SERVER"  # base URL of the api
    JOB_ID = "TRAINYARD_JOB_ID"
    ATTEMPT = "TRAINYARD_ATTEMPT"  # the attempt's number, an int >= 1
    TOKEN = "TRAINYARD_TOKEN"  # the attempt's own credential (the fencing token), dead once it ends
    HPARAMS = "TRAINYARD_HPARAMS"  # JSON object
    CHECKPOINT_DIR = "TRAINYARD_CHECKPOINT_DIR"  # the job's checkpoint root, shared by attempts
    CHECKPOINT_POLICY = "TRAINYARD_CHECKPOINT_POLICY"  # JSON of CheckpointPolicy
    HEARTBEAT_INTERVAL_S = "TRAINYARD_HEARTBEAT_INTERVAL_S"
    RUN_DIR = "TRAINYARD_RUN_DIR"  # standalone runs: where checkpoints go without a server
    DATASET_DIR = "TRAINYARD_DATASET_DIR"  # the job's dataset snapshot, verified and read-only
    SECRET_NAMES = "TRAINYARD_SECRET_NAMES"  # comma-separated env names holding secrets: redacted from logs


def heartbeat_interval(timeout_s: float) -> float:
    """How often ranks heartbeat: several beats inside one timeout, never busier than 4/s."""
    return max(0.25, min(5.0, timeout_s / 4))
