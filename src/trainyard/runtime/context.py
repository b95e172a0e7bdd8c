"""`trainyard.init()` and the Context a training script holds.

```python
ctx = trainyard.init(hparams={"lr": 1e-3})
restored = ctx.checkpoint.load()
for step in range(start, steps):
    ...
    ctx.log({"train_loss": loss.item()}, step)
    ctx.checkpoint.save(step, {"model": model.state_dict(), "step": step})
    if ctx.should_stop():
        ctx.checkpoint.save(step, state, force=True)
        break
ctx.finish()
```

The same script runs on the platform (launched with TRAINYARD_* variables)
and standalone (`python train.py`: no server, files under ./trainyard-runs/).
"""

from __future__ import annotations

import atexit
import functools
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from trainyard.runtime import client_run, system_metrics
from trainyard.runtime.checkpoint import Checkpointer
from trainyard.runtime.commits import CommitLog, LocalCommitLog, ServerCommitLog
from trainyard.runtime.distributed import Distributed
from trainyard.runtime.heartbeat import Heartbeat
from trainyard.runtime.launch import RankEnv, attempt_client, default_run_dir, read_launch_env
from trainyard.runtime.metrics import MetricShipper, file_send, server_send
from trainyard.runtime.stop import StopSignal, install_sigterm_handler
from trainyard.spec import CheckpointPolicy

log = logging.getLogger("trainyard.runtime")

METRICS_FILE = "metrics.jsonl"


class Context:
    """One rank's handle on the platform. Made by `trainyard.init()`."""

    def __init__(
        self, env: RankEnv, flush_timeout_s: float = 10.0, commit_timeout_s: float = 300.0
    ):
        self.env = env
        self.flush_timeout_s = flush_timeout_s
        self.commit_timeout_s = commit_timeout_s
        self._stop = StopSignal()
        self._stop_logged = False
        self._last_step: int | None = None
        self._finished = False
        install_sigterm_handler(self._stop)
        self._dist = Distributed(env.rank, env.local_rank, env.world_size)

        connect = functools.partial(attempt_client, env)
        commits: CommitLog
        if env.standalone:
            local = LocalCommitLog(env.checkpoint_dir, env.policy)
            self.attempt = local.last_attempt() + 1 if self.is_main else env.attempt
            commits = local
        else:
            self.attempt = env.attempt
            commits = ServerCommitLog(connect, env.job_id or "", env.checkpoint_dir)
        self.checkpoint = Checkpointer(
            env.checkpoint_dir, env.policy, commits, self.attempt, self._dist, self._stop
        )

        self._shipper: MetricShipper | None = None
        self._client_run = client_run.start(env, default_run_dir().name)  # standalone + a server
        if self.is_main:
            send = (
                self._client_run.send()
                if self._client_run
                else file_send(env.run_dir / METRICS_FILE)
                if env.standalone
                else server_send(connect, env.rank)
            )
            self._shipper = MetricShipper(send, stop=self._stop)
        self._system = system_metrics.start(env, connect, self._current_step, self._client_run)

        self._heartbeat: Heartbeat | None = None
        if not env.standalone:
            self._heartbeat = Heartbeat(
                connect, env.rank, env.heartbeat_interval_s, self._stop, self._current_step
            )
            self._heartbeat.first_beat()
            self._heartbeat.start()
        atexit.register(self.finish)

    # -- who and where --------------------------------------------------------

    @property
    def rank(self) -> int:
        return self.env.rank

    @property
    def local_rank(self) -> int:
        return self.env.local_rank

    @property
    def world_size(self) -> int:
        return self.env.world_size

    @property
    def is_main(self) -> bool:
        return self.env.rank == 0

    @property
    def job_id(self) -> str | None:
        """The platform's job id; None in a standalone run."""
        return self.env.job_id

    @property
    def run_id(self) -> str | None:
        """The run metrics go to: the job's id, or the run made for a script pointed at a server."""
        return self._client_run.id if self._client_run else self.env.job_id

    @property
    def hparams(self) -> dict[str, Any]:
        return self.env.hparams

    @property
    def dataset_dir(self) -> Path | None:
        """The job's dataset snapshot: a read-only directory verified against its manifest at
        launch (TRAINYARD_DATASET_DIR); None when the job names no dataset."""
        return self.env.dataset_dir

    @property
    def device(self) -> torch.device:
        return self._dist.device

    # -- during training ------------------------------------------------------

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        """Record metrics at `step` without waiting. Only rank 0 ships; elsewhere a no-op.

        Values are converted with float() in the background, so pass Python
        numbers (`loss.item()`), not tensors that are still being computed.
        """
        self._last_step = step
        if self._shipper is not None:
            self._shipper.log(metrics, step)

    def should_stop(self) -> bool:
        """Whether training should checkpoint and exit: SIGTERM, the server's stop, or fencing.

        With several ranks this is a collective (all ranks get the same answer
        at the same call), so call it from every rank at the same point, e.g.
        once per step.
        """
        stop = self._dist.any_rank(self._stop.is_set())
        if stop and not self._stop_logged:
            self._stop_logged = True
            log.warning(
                "trainyard: stopping: %s", self._stop.reason or "another rank was asked to stop"
            )
        return stop

    @property
    def stop_reason(self) -> str | None:
        """Why this rank was asked to stop, if it was (local: no collective)."""
        return self._stop.reason

    def _current_step(self) -> int | None:
        steps = [s for s in (self._last_step, self.checkpoint.last_step) if s is not None]
        return max(steps, default=None)

    # -- the end --------------------------------------------------------------

    def finish(self) -> None:
        """Deliver the last metrics and checkpoint, then leave the gang. Safe to call twice."""
        if self._finished:
            return
        self._finished = True
        atexit.unregister(self.finish)
        self.checkpoint.commit_deadline = time.monotonic() + self.commit_timeout_s
        if not self.checkpoint.wait(self.commit_timeout_s):
            log.error("trainyard: the last checkpoint was not committed before exit")
        self.checkpoint.close()
        if self._shipper is not None:
            self._shipper.close(self.flush_timeout_s)
        if self._system is not None:
            self._system.close(self.flush_timeout_s)
        if self._client_run is not None:
            self._client_run.end()
        if self._heartbeat is not None:
            self._heartbeat.close()
        self._dist.close()

    def __enter__(self) -> Context:
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()


def init(
    hparams: dict[str, Any] | None = None,
    checkpoint: CheckpointPolicy | dict[str, Any] | None = None,
) -> Context:
    """Join the job: read the launch environment, set up distributed training, start heartbeats.

    `hparams` and `checkpoint` are the script's defaults; what the platform
    passes (TRAINYARD_HPARAMS, TRAINYARD_CHECKPOINT_POLICY) overrides them.
    """
    return Context(read_launch_env(hparams=hparams, checkpoint=checkpoint))
