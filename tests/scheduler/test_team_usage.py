"""The control loop's fair-share history: GPUs each team held lately, read from the store."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from trainyard.control.scheduling import team_usage
from trainyard.spec import JobSpec, Resources
from trainyard.store import repo
from trainyard.store.db import Store
from trainyard.store.tables import Attempt

HOUR = 3600.0


def test_team_usage_weighs_recent_attempts_and_forgets_old_ones(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    now = 1_800_000_000.0

    def at(t: float) -> datetime:
        return datetime.fromtimestamp(t, UTC)

    with store.session() as s:
        for name, team, gpus, start, end in [
            ("running", "vision", 4, now - 4 * HOUR, None),  # 4 GPUs through the whole window
            ("ended", "speech", 8, now - 2 * HOUR, now - 1 * HOUR),
            ("ancient", "speech", 8, now - 100 * HOUR, now - 90 * HOUR),  # beyond four half-lives
        ]:
            spec = JobSpec(name=name, team=team, entrypoint=["true"],
                           resources=Resources(workers=gpus // 2, gpus_per_worker=2))
            job = repo.create_job(s, spec, {})
            s.add(Attempt(job_id=job.id, number=1, state="RUNNING" if end is None else "SUCCEEDED",
                          launch={}, started_at=at(start), ended_at=None if end is None else at(end)))
    with store.session() as s:
        usage = team_usage(s, now, half_life_s=HOUR)
    store.close()
    # held 4 GPUs all through the four half-lives looked at
    assert usage["vision"] == pytest.approx(4.0)
    # 8 GPUs from 2 h to 1 h ago: weight (1/2 - 1/4) of the window's (1 - 1/16)
    assert usage["speech"] == pytest.approx(8.0 * 0.25 / (1 - 2**-4))
