"""Issue 3's average-JCT rules, as tables: moving small gangs to make whole nodes,
shortest work first by preemption, and borrowed capacity by job size with light teams
protected by their usage history."""

from __future__ import annotations

import pytest

from trainyard.scheduler.model import ClusterSnapshot, GangRequest, Node, RunningGang, Team
from trainyard.scheduler.policy import BACKFILL, Policy, schedule
from trainyard.scheduler.quota import QuotaBook
from trainyard.scheduler.state import ClusterState


def nodes(n: int, gpus: int = 8, **kw: object) -> tuple[Node, ...]:
    return tuple(Node(f"n{i}", gpus, **kw) for i in range(n))  # type: ignore[arg-type]


def job(id: str, gpus: int, **kw: object) -> GangRequest:
    return GangRequest(id, gpus, **kw)  # type: ignore[arg-type]


def gang(id: str, placement: dict[str, int], start: float = 0.0, every: float | None = None,
         **kw: object) -> RunningGang:
    return RunningGang(job(id, sum(placement.values()), **kw), placement, start, checkpoint_every_s=every)


# -- moving small gangs so a whole-node gang can start ----------------------------------------

def test_a_small_gang_moves_so_a_whole_node_gang_starts_and_then_runs_elsewhere() -> None:
    cluster = nodes(2)
    small = gang("small", {"n0": 1}, preemptible=True)
    fixed = gang("fixed", {"n1": 7})
    d = schedule(ClusterSnapshot(cluster, (small, fixed), (job("g8", 8),), now=100))
    assert [(p.job_id, p.for_job, p.move) for p in d.preempt] == [("small", "g8", True)]
    assert "moved off n0" in d.preempt[0].reason
    assert {a.job_id: a.placement for a in d.admit} == {"g8": {"n0": 8}}
    # next cycle: the moved gang is queued again and goes where room was held for it
    running = (gang("g8", {"n0": 8}, start=100), fixed)
    d = schedule(ClusterSnapshot(cluster, running, (job("small", 1, preemptible=True),), now=130))
    assert {a.job_id: a.placement for a in d.admit} == {"small": {"n1": 1}}


@pytest.mark.parametrize(
    ("running", "pending", "why"),
    [
        # not preemptible: never moved
        ((gang("small", {"n0": 1}), gang("fixed", {"n1": 7})), (job("g8", 8),), "not preemptible"),
        # a higher class than the waiting gang
        ((gang("small", {"n0": 1}, preemptible=True, priority="high"), gang("fixed", {"n1": 7})),
         (job("g8", 8),), "higher class"),
        # 8 GPUs free in all, but the 2-GPU gang would have nowhere to go (1 free on n1, 1 on n2)
        ((gang("pair", {"n0": 2}, preemptible=True), gang("f1", {"n1": 7}), gang("f2", {"n2": 7})),
         (job("g8", 8),), "no room elsewhere"),
        # a waiting 1-GPU job takes n1's free GPU first: then only 7 are free, moving gains nothing
        ((gang("small", {"n0": 1}, preemptible=True), gang("fixed", {"n1": 7})),
         (job("g8", 8), job("one", 1)), "a waiting job uses the free GPUs"),
    ],
)
def test_gangs_are_not_moved(running, pending, why) -> None:  # type: ignore[no-untyped-def]
    cluster = nodes(3) if why == "no room elsewhere" else nodes(2)
    d = schedule(ClusterSnapshot(cluster, running, pending, now=100))
    assert not d.preempt, why
    assert "g8" not in {a.job_id for a in d.admit}


def test_fifo_and_backfill_presets_never_move_gangs() -> None:
    run = (gang("small", {"n0": 1}, preemptible=True), gang("fixed", {"n1": 7}))
    d = schedule(ClusterSnapshot(nodes(2), run, (job("g8", 8),), now=100), BACKFILL)
    assert not d.preempt and not d.admit


# -- shortest work first: long same-class work gives way at its checkpoint ---------------------

LONG = 36_000.0  # s the running gangs are expected to take


@pytest.mark.parametrize(
    ("now", "short_s", "victim_kw", "gives_way"),
    [
        (5460.0, 600.0, {}, True),  # 60 s after its checkpoint, 30,540 s left ≥ 4 × 600
        (5800.0, 600.0, {}, False),  # 400 s since its checkpoint: too much lost
        (5460.0, 9000.0, {}, False),  # the waiting job is not 4× shorter than what is left
        (5460.0, 600.0, {"preemptible": False}, False),
        (5460.0, 600.0, {"team": "other"}, False),  # another team, not borrowing from a cohort
        (5460.0, 600.0, {"priority": "high"}, False),
    ],
)
def test_long_work_gives_way_to_much_shorter_work_just_after_its_checkpoint(  # type: ignore[no-untyped-def]
        now, short_s, victim_kw, gives_way) -> None:
    kw = {"preemptible": True, **victim_kw}
    run = tuple(gang(f"v{i}", {"n0": 1}, every=1800.0, expected_duration=LONG, **kw) for i in range(8))
    d = schedule(ClusterSnapshot(nodes(1), run, (job("short", 1, expected_duration=short_s),), now=now))
    assert len(d.preempt) == (1 if gives_way else 0)
    assert [a.job_id for a in d.admit] == (["short"] if gives_way else [])


def test_a_gang_that_gave_way_is_not_sent_back_before_its_next_checkpoint() -> None:
    # restarted at 5,400 from its checkpoint: 60 s in, it has not checkpointed since
    run = tuple(gang(f"v{i}", {"n0": 1}, start=5400.0, every=1800.0, expected_duration=LONG, preemptible=True)
                for i in range(8))
    d = schedule(ClusterSnapshot(nodes(1), run, (job("short", 1, expected_duration=600.0),), now=5460.0))
    assert not d.preempt


# -- borrowed capacity by job size; light teams in a burst first -------------------------------

TEAMS = (Team("light", gpus=4, cohort="c"), Team("heavy", gpus=4, cohort="c"), Team("lender", gpus=8, cohort="c"))


def _one_free_gpu() -> tuple[RunningGang, ...]:
    """16 GPUs, 15 held: light 5 and heavy 6 (both over their quota of 4), lender 4 of its 8."""
    return (gang("l", {"n0": 5}, team="light"), gang("h", {"n1": 6}, team="heavy"),
            gang("x", {"n0": 3}, team="lender"), gang("y", {"n1": 1}, team="lender"))


@pytest.mark.parametrize(
    ("usage", "first"),
    [
        ({}, "heavy-short"),  # no history: the smaller expected work wins the borrowed GPU
        ({"light": 2.0, "heavy": 12.0}, "light-long"),  # light has held less than its quota lately
        ({"light": 6.0, "heavy": 12.0}, "heavy-short"),  # both have used more than their quota
    ],
)
def test_borrowed_capacity_goes_to_light_teams_then_to_the_smallest_work(usage, first) -> None:  # type: ignore[no-untyped-def]
    pending = (job("light-long", 1, team="light", expected_duration=3600.0),
               job("heavy-short", 1, team="heavy", expected_duration=60.0))
    d = schedule(ClusterSnapshot(nodes(2), _one_free_gpu(), pending, teams=TEAMS, now=100, usage=usage))
    assert [a.job_id for a in d.admit] == [first]


def test_usage_history_decays_toward_what_a_team_holds_now() -> None:
    book = QuotaBook([Team("a", gpus=4)], total_gpus=16, total_cpus=0)
    book.advance(0.0, half_life_s=3600.0)
    book.add("a", 8, 0.0)
    book.advance(3600.0, half_life_s=3600.0)
    assert book.average_gpus("a") == pytest.approx(8.0)  # held 8 the whole time it has been watched
    book.remove("a", 8, 0.0)
    book.advance(7200.0, half_life_s=3600.0)  # then an hour at 0, which weighs twice the hour before
    assert book.average_gpus("a") == pytest.approx(8.0 * 0.25 / (0.25 + 0.5))
    book.advance(7200.0 + 10 * 3600.0, half_life_s=3600.0)
    assert book.average_gpus("a") < 0.1


def test_the_simulator_keeps_history_across_cycles() -> None:
    state = ClusterState(nodes(2), TEAMS)
    policy = Policy()
    queue = policy.new_queue(state)
    state.start(job("h", 8, team="heavy"), [(0, 8)], 0.0)
    policy.cycle(state, queue, 0.0)
    policy.cycle(state, queue, 7200.0)
    assert state.quota.average_gpus("heavy") == pytest.approx(8.0)
    assert state.quota.average_gpus("light") == 0.0
