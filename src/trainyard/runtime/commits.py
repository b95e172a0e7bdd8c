"""Where committed checkpoints are recorded: the server, or the run directory when standalone."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from trainyard.runtime.manifest import read_manifest
from trainyard.spec import CheckpointPolicy, CheckpointSummary, checkpoint_dir_name

log = logging.getLogger("trainyard.runtime")

RESTORABLE_STATE = "committed"  # not corrupt, nor let go of by retention (deleting, deleted)


@dataclass(frozen=True)
class Committed:
    step: int
    directory: Path
    manifest: dict[str, Any] | None
    metrics: dict[str, float] = field(default_factory=dict)


class CommitLog(Protocol):
    def list(self) -> list[Committed]:
        """Committed checkpoints, newest first."""
        ...

    def commit(
        self,
        step: int,
        directory: Path,
        nbytes: int,
        manifest: dict[str, Any],
        metrics: dict[str, float],
    ) -> None: ...

    def report_corrupt(self, step: int, reason: str) -> None: ...

    def event(self, kind: str, reason: str) -> None: ...


class ServerCommitLog:
    """The platform's record, through the attempt's fenced client.

    The server names every location: a checkpoint is read from the directory (attempt, step)
    names under this job's own root, whatever uri the listing shows.
    """

    def __init__(self, client_factory: Callable[[], Any], job_id: str, root: Path) -> None:
        self._client_factory = client_factory
        self._client: Any = None
        self.job_id = job_id
        self.root = root

    @property
    def _attempt(self) -> Any:
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    def list(self) -> list[Committed]:
        items = self._attempt.client.checkpoints(self.job_id)
        out = []
        for item in items:
            if str(item.get("state") or "").lower() != RESTORABLE_STATE:
                continue
            step, attempt = int(item["step"]), int(item["attempt"])
            out.append(
                Committed(
                    step=step,
                    directory=self.root / checkpoint_dir_name(attempt, step),
                    manifest=item.get("manifest") or None,
                    metrics=item.get("metrics") or {},
                )
            )
        return sorted(out, key=lambda c: c.step, reverse=True)

    def commit(
        self,
        step: int,
        directory: Path,
        nbytes: int,
        manifest: dict[str, Any],
        metrics: dict[str, float],
    ) -> None:
        self._attempt.commit_checkpoint(step, nbytes, manifest, metrics)

    def report_corrupt(self, step: int, reason: str) -> None:
        self._attempt.report_corrupt(step, reason)

    def event(self, kind: str, reason: str) -> None:
        self._attempt.event(kind, reason)


class LocalCommitLog:
    """A standalone run's record: the manifests in its checkpoint directory.

    Writing the manifest is the commit, so `commit` only applies retention,
    which the server does for platform runs.
    """

    def __init__(self, root: Path, policy: CheckpointPolicy) -> None:
        self.root = root
        self.policy = policy

    def list(self) -> list[Committed]:
        out = []
        for directory in self.root.glob("a*-s*"):
            manifest = read_manifest(directory)
            if manifest is None or not isinstance(manifest.get("step"), int):
                continue
            out.append(
                Committed(manifest["step"], directory, manifest, manifest.get("metrics") or {})
            )
        return sorted(out, key=lambda c: (c.step, c.directory.name), reverse=True)

    def commit(
        self,
        step: int,
        directory: Path,
        nbytes: int,
        manifest: dict[str, Any],
        metrics: dict[str, float],
    ) -> None:
        committed = self.list()
        keep = self.policy.retained(
            [CheckpointSummary(step=c.step, metrics=c.metrics) for c in committed]
        )
        for c in committed:
            if c.step not in keep and c.directory != directory:
                shutil.rmtree(c.directory, ignore_errors=True)

    def report_corrupt(self, step: int, reason: str) -> None:
        log.warning("trainyard: checkpoint at step %d failed verification: %s", step, reason)

    def event(self, kind: str, reason: str) -> None:
        log.warning("trainyard: %s: %s", kind, reason)

    def last_attempt(self) -> int:
        """The highest attempt number among directories here (0 if none)."""
        numbers = []
        for directory in self.root.glob("a*-s*"):
            head = directory.name.split("-", 1)[0][1:]
            if head.isdigit():
                numbers.append(int(head))
        return max(numbers, default=0)
