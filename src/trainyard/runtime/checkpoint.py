"""`ctx.checkpoint`: save when the policy says so, commit in the background, restore verified.

save() blocks the training loop only for an in-memory snapshot. A writer
thread makes the files durable and writes the manifest last, in the directory
the server names for (attempt, step) under the job's root; a committer thread
then records the checkpoint (retrying while the server is down, for a bounded
time). Restore loads tensors and plain containers only (weights_only) unless
the job's policy sets trusted_pickle.
Only rank 0 writes — DDP state is the same on every rank — but every rank
calls save() and gets the same answer.
"""

from __future__ import annotations

import logging
import pickle
import queue
import re
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import torch

from trainyard.client import StaleAttempt
from trainyard.runtime.commits import CommitLog, Committed
from trainyard.runtime.distributed import Distributed
from trainyard.runtime.manifest import STATE_FILE, verify, write_checkpoint
from trainyard.runtime.retry import Backoff, is_transient
from trainyard.runtime.snapshot import Snapshotter
from trainyard.runtime.stop import StopSignal
from trainyard.spec import CheckpointPolicy, checkpoint_dir_name

log = logging.getLogger("trainyard.runtime")

_Commit = tuple[int, Path, int, dict[str, Any], dict[str, float]]

COMMIT_RETRY_S = 600.0  # a server restart takes seconds; an error that outlives this is not passing


class Checkpointer:
    def __init__(
        self,
        root: Path,
        policy: CheckpointPolicy,
        commits: CommitLog,
        attempt: int,
        dist: Distributed,
        stop: StopSignal,
    ) -> None:
        self.root = root
        self.policy = policy
        self.attempt = attempt
        self._commits = commits
        self._dist = dist
        self._stop = stop
        self._snapshots = Snapshotter()
        self._last_step: int | None = None
        self._last_time = time.monotonic()
        self._writer: threading.Thread | None = None
        self._queue: queue.Queue[_Commit | None] = queue.Queue()
        self._outstanding = 0  # saves not yet committed (or given up on)
        self._settled = threading.Condition()
        self._committer: threading.Thread | None = None
        self._fenced = False
        self.commit_deadline: float | None = None  # set by finish(): give up retrying after it
        self.commit_retry_s = COMMIT_RETRY_S  # how long one checkpoint's commit is retried
        self.last_commit_error: str | None = None  # why the last commit failed, if one did

    @property
    def is_main(self) -> bool:
        return self._dist.rank == 0

    @property
    def last_step(self) -> int | None:
        """The step of the last checkpoint saved or restored."""
        return self._last_step

    def due(self, step: int) -> bool:
        due = self.policy.due(step, self._last_step, time.monotonic() - self._last_time)
        if self.policy.every_seconds is not None:
            due = self._dist.from_main(due)  # clocks differ; rank 0 decides for all
        return due

    @property
    def step_wait_s(self) -> float:
        """Seconds optimizer steps have waited, so far, for overlapped snapshots to finish copying."""
        return self._snapshots.step_wait_s

    def save(
        self,
        step: int,
        state: Any,
        metrics: dict[str, float] | None = None,
        force: bool = False,
        overlap: bool = False,
    ) -> bool:
        """Checkpoint `state` at `step` if due (or `force`). Returns whether it was saved.

        Blocks only for the in-memory snapshot (and for the previous save's
        files, if they are still being written). Call it on every rank.

        `overlap=True` (opt-in) returns after copying plain values and small
        tensors; large CPU tensors are copied in the background while the loop
        runs its next forward/backward, and the next `optimizer.step()` waits
        for that copy. Safe only if nothing but `optimizer.step()` changes a
        large state tensor between save() and that step — not BatchNorm
        statistics over 1 MiB, EMA weights updated before the step, or manual
        in-place edits (see trainyard.runtime.snapshot). The default copies
        everything before returning.
        """
        if step == self._last_step:
            return True
        if not (self.due(step) or force):
            return False
        self._last_step, self._last_time = step, time.monotonic()
        if not self.is_main:
            return True
        if self._fenced:
            return False
        self._wait_written()
        with self._settled:
            self._outstanding += 1
        snapshot = self._snapshots.take(state, overlap=overlap)
        clean_metrics = {k: float(v) for k, v in (metrics or {}).items()}
        self._writer = threading.Thread(
            target=self._write,
            args=(step, snapshot, clean_metrics),
            name=f"trainyard-checkpoint-{step}",
            daemon=True,
        )
        self._writer.start()
        return True

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every save so far is written and committed; False if `timeout` ran out."""
        with self._settled:
            return self._settled.wait_for(lambda: self._outstanding == 0, timeout)

    def _settle(self) -> None:
        with self._settled:
            self._outstanding -= 1
            self._settled.notify_all()

    def _wait_written(self) -> None:
        if self._writer is not None:
            self._writer.join()

    def _write(self, step: int, snapshot: Any, metrics: dict[str, float]) -> None:
        directory = self.root / checkpoint_dir_name(self.attempt, step)
        try:
            self._snapshots.ready()
            if directory.exists():
                shutil.rmtree(directory)
            manifest, nbytes = write_checkpoint(directory, snapshot, step, self.attempt, metrics)
        except Exception:
            log.exception(
                "trainyard: writing the checkpoint at step %d failed; training goes on", step
            )
            shutil.rmtree(directory, ignore_errors=True)
            self._settle()
            return
        del snapshot
        self._ensure_committer()
        self._queue.put((step, directory, nbytes, manifest, metrics))

    def _ensure_committer(self) -> None:
        if self._committer is None:
            self._committer = threading.Thread(
                target=self._commit_loop, name="trainyard-commit", daemon=True
            )
            self._committer.start()

    def _commit_loop(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                self._commit(*item)
            finally:
                self._settle()

    def _commit(
        self,
        step: int,
        directory: Path,
        nbytes: int,
        manifest: dict[str, Any],
        metrics: dict[str, float],
    ) -> None:
        """Commit one checkpoint, retrying while the server is down or failing, for a bounded time."""
        backoff = Backoff(cap=10.0)
        give_up_at = time.monotonic() + self.commit_retry_s
        tries = 0
        while not self._fenced:
            tries += 1
            try:
                self._commits.commit(step, directory, nbytes, manifest, metrics)
                log.info("trainyard: checkpoint at step %d committed (%d bytes)", step, nbytes)
                return
            except StaleAttempt as exc:
                self._fenced = True
                shutil.rmtree(directory, ignore_errors=True)
                self._stop.set(f"this attempt is no longer current ({exc}); checkpoint discarded")
                return
            except Exception as exc:
                self.last_commit_error = f"step {step}: {exc}"
                if not is_transient(exc):
                    self._commit_failed(step, f"the server refused it: {exc}")
                    return
                deadline = min(give_up_at, self.commit_deadline or give_up_at)
                if time.monotonic() >= deadline:
                    self._commit_failed(step, f"gave up after {tries} tries: {exc}")
                    return
                log.warning(
                    "trainyard: could not commit checkpoint at step %d (%s); retrying", step, exc
                )
                time.sleep(min(backoff.next_delay(), max(0.0, deadline - time.monotonic())))

    def _commit_failed(self, step: int, why: str) -> None:
        """Training goes on; the log and the job's events say this checkpoint never counted."""
        reason = f"checkpoint at step {step} was not committed: {why}"
        log.error("trainyard: %s", reason)
        self._best_effort(self._commits.event, "checkpoint_commit_failed", reason)

    def close(self) -> None:
        if self._committer is not None:
            self._queue.put(None)
            self._committer.join(timeout=2.0)
            self._committer = None
        self._snapshots.release()

    # -- restore --------------------------------------------------------------

    def load(self) -> tuple[int, Any] | None:
        """The newest checkpoint that verifies, as (step, state), or None. Call it on every rank.

        Rank 0 chooses (reporting each one that fails verification and falling
        back to the one before); every rank then verifies and loads that one.
        """
        candidates = self._commits.list()
        chosen = self._choose(candidates) if self.is_main else None
        step = self._dist.int_from_main(chosen.step if chosen is not None else -1)
        if step < 0:
            return None
        found = chosen or next((c for c in candidates if c.step == step), None)
        if found is None:
            raise RuntimeError(f"rank {self._dist.rank} cannot see the checkpoint at step {step}")
        if not self.is_main and (reason := verify(found.directory, found.manifest)):
            raise RuntimeError(
                f"checkpoint at step {step} fails verification on this rank: {reason}"
            )
        try:
            state = _load_file(found.directory / STATE_FILE, self._dist.device, self.policy.trusted_pickle)
        except pickle.UnpicklingError as exc:
            reason = (
                f"checkpoint at step {step} fails verification: it holds {_needs_pickle(exc)}, which "
                "only full pickle can load. Unpickling runs code, so restore loads tensors and plain "
                "containers only: save only those, allow the class with "
                "torch.serialization.add_safe_globals, or set checkpoint.trusted_pickle: true in the "
                "job spec if you trust everything that writes this job's checkpoints"
            )
            if self.is_main:
                self._best_effort(self._commits.event, "checkpoint_refused", reason)
            raise RuntimeError(reason) from None
        self._last_step, self._last_time = found.step, time.monotonic()
        log.info(
            "trainyard: restored the checkpoint at step %d from %s", found.step, found.directory
        )
        return found.step, state

    def _choose(self, candidates: list[Committed]) -> Committed | None:
        failed: list[tuple[Committed, str]] = []
        chosen = None
        for c in candidates:
            reason = verify(c.directory, c.manifest)
            if reason is None:
                chosen = c
                break
            failed.append((c, reason))
        for c, reason in failed:
            then = f"restoring step {chosen.step}" if chosen else "no earlier checkpoint verifies"
            self._best_effort(self._commits.report_corrupt, c.step, reason)
            self._best_effort(
                self._commits.event,
                "checkpoint_fallback",
                f"checkpoint at step {c.step} failed verification ({reason}); {then}",
            )
        return chosen

    @staticmethod
    def _best_effort(call: Any, *args: Any) -> None:
        try:
            call(*args)
        except Exception as exc:
            log.warning("trainyard: could not tell the server (%s)", exc)


def _needs_pickle(exc: pickle.UnpicklingError) -> str:
    found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
    return found.group(1) if found else "objects beyond tensors and plain containers"


def _load_file(path: Path, device: torch.device, trusted_pickle: bool) -> Any:
    """Tensors and plain containers only, unless the job's spec trusts pickle (which runs code)."""
    return torch.load(path, map_location=device, weights_only=not trusted_pickle)
