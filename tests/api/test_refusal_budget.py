"""The refusal budget's arithmetic, on a clock the test moves (the server-level behaviour is in
test_body_limits.py)."""

from __future__ import annotations

from trainyard.api.refusals import MiB, RefusalBudget


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_refusals_within_the_burst_are_not_held_and_past_it_wait_for_the_refill():
    clock = Clock()
    budget = RefusalBudget(rate=32 * MiB, burst=256 * MiB, per_refusal=0, clock=clock)
    assert [budget.charge("a", 16 * MiB) for _ in range(16)] == [0.0] * 16
    assert budget.charge("a", 16 * MiB) == 0.5
    clock.now += 0.5
    assert budget.charge("a", 16 * MiB) == 0.5  # half a second refilled what was owed, not more
    assert budget.charge("b", 16 * MiB) == 0.0  # each client has its own


def test_a_hold_is_capped_and_the_debt_with_it():
    clock = Clock()
    budget = RefusalBudget(rate=MiB, burst=MiB, per_refusal=0, max_hold_s=30, clock=clock)
    assert budget.charge("a", 10_000 * MiB) == 30
    clock.now += 30
    assert budget.charge("a", 0) == 0.0  # paid off within the longest hold


def test_settled_clients_are_forgotten_once_there_are_too_many():
    clock = Clock()
    budget = RefusalBudget(rate=MiB, burst=MiB, per_refusal=0, max_clients=3, clock=clock)
    for client in "abc":
        budget.charge(client, MiB)
    clock.now += 2
    budget.charge("d", 2 * MiB)
    assert set(budget._buckets) == {"d"}
