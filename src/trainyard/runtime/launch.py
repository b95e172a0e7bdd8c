"""What a backend told this rank: the launch environment, read once at init."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainyard.client import AttemptClient, Client
from trainyard.spec import CheckpointPolicy, LaunchEnv, heartbeat_interval


@dataclass(frozen=True)
class RankEnv:
    """One rank's view of its launch. `job_id` is None in a standalone run."""

    job_id: str | None
    attempt: int
    server: str | None
    rank: int
    local_rank: int
    world_size: int
    local_world_size: int
    hparams: dict[str, Any]
    checkpoint_dir: Path
    run_dir: Path
    policy: CheckpointPolicy
    heartbeat_interval_s: float
    dataset_dir: Path | None = None  # the job's dataset snapshot, read-only; None when it names none

    @property
    def standalone(self) -> bool:
        return self.job_id is None


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(
            f"{name}={raw!r} is not an integer; the backend must set a number"
        ) from None


def _json_object(env: dict[str, str], name: str) -> dict[str, Any]:
    raw = env.get(name)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"{name} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a JSON object, got {type(value).__name__}")
    return value


def default_run_dir() -> Path:
    """Standalone runs keep their files under ./trainyard-runs/<script name>/."""
    script = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] not in ("", "-c") else "interactive"
    return Path("trainyard-runs") / script


def read_launch_env(
    hparams: dict[str, Any] | None = None,
    checkpoint: CheckpointPolicy | dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> RankEnv:
    """The launch environment merged over a script's defaults (the environment wins)."""
    env = dict(os.environ if environ is None else environ)
    job_id = env.get(LaunchEnv.JOB_ID) or None
    run_dir = Path(env.get(LaunchEnv.RUN_DIR) or default_run_dir()).absolute()
    ckpt_root = env.get(LaunchEnv.CHECKPOINT_DIR)
    checkpoint_dir = Path(ckpt_root).absolute() if ckpt_root else run_dir / "checkpoints"

    policy = (
        checkpoint
        if isinstance(checkpoint, CheckpointPolicy)
        else CheckpointPolicy.model_validate(checkpoint or {})
    )
    env_policy = _json_object(env, LaunchEnv.CHECKPOINT_POLICY)
    if env_policy:
        policy = CheckpointPolicy.model_validate(env_policy)

    raw_interval = env.get(LaunchEnv.HEARTBEAT_INTERVAL_S)
    interval = float(raw_interval) if raw_interval else heartbeat_interval(60.0)

    return RankEnv(
        job_id=job_id,
        attempt=_int(env, LaunchEnv.ATTEMPT, 1),
        server=env.get(LaunchEnv.SERVER) or None,
        rank=_int(env, "RANK", 0),
        local_rank=_int(env, "LOCAL_RANK", 0),
        world_size=_int(env, "WORLD_SIZE", 1),
        local_world_size=_int(env, "LOCAL_WORLD_SIZE", 1),
        hparams={**(hparams or {}), **_json_object(env, LaunchEnv.HPARAMS)},
        checkpoint_dir=checkpoint_dir,
        run_dir=run_dir,
        policy=policy,
        heartbeat_interval_s=max(0.05, interval),
        dataset_dir=Path(env[LaunchEnv.DATASET_DIR]) if env.get(LaunchEnv.DATASET_DIR) else None,
    )


def attempt_client(env: RankEnv, timeout: float = 10.0) -> AttemptClient:
    """A fresh connection for one background thread; httpx clients are not shared across threads."""
    if env.job_id is None:
        raise RuntimeError("a standalone run has no server to talk to")
    return Client(env.server, timeout=timeout).attempt(env.job_id, env.attempt)
