"""The scheduling rules of issue 3, as tables: cluster state in, decisions out."""

from __future__ import annotations

from dataclasses import replace

import pytest

from trainyard.scheduler.model import (
    SPOT,
    ClusterSnapshot,
    GangRequest,
    Node,
    RunningGang,
    Team,
)
from trainyard.scheduler.policy import BACKFILL, FIFO, TRAINYARD, Policy, schedule
from trainyard.scheduler.queue import Ordering
from trainyard.scheduler.state import ClusterState


def nodes(n: int, gpus: int = 8, **kw: object) -> tuple[Node, ...]:
    prefix = str(kw.pop("prefix", "n"))
    return tuple(Node(f"{prefix}{i}", gpus, **kw) for i in range(n))  # type: ignore[arg-type]


def job(id: str, gpus: int, **kw: object) -> GangRequest:
    return GangRequest(id, gpus, **kw)  # type: ignore[arg-type]


def running(id: str, placement: dict[str, int], **kw: object) -> RunningGang:
    start = float(kw.pop("start", 0.0))  # type: ignore[arg-type]
    ckpt = kw.pop("last_checkpoint_time", None)
    return RunningGang(job(id, sum(placement.values()), **kw), placement, start,
                       last_checkpoint_time=ckpt)  # type: ignore[arg-type]


def admitted(snapshot: ClusterSnapshot, config=TRAINYARD) -> dict[str, dict[str, int]]:  # type: ignore[no-untyped-def]
    return {a.job_id: a.placement for a in schedule(snapshot, config).admit}


# -- gang placement: all or nothing, packed, constraints --------------------------

@pytest.mark.parametrize(
    ("cluster", "busy", "gang", "expect"),
    [
        # all or nothing: 12 GPUs free in pieces of 4, a 16-GPU gang gets nothing
        (nodes(3), {"n0": 4, "n1": 4, "n2": 4}, job("g", 16), None),
        # a gang of ≤ 8 lands on one node, the fullest it fits on (best fit)
        (nodes(3), {"n0": 2, "n1": 6}, job("g", 2), {"n1": 2}),
        (nodes(3), {"n0": 2, "n1": 6}, job("g", 6), {"n0": 6}),
        # ≤ 8 GPUs never split across nodes by default, even when enough are free in total
        (nodes(2), {"n0": 4, "n1": 4}, job("g", 8), None),
        # ... unless the gang allows more nodes
        (nodes(2), {"n0": 4, "n1": 4}, job("g", 8, max_nodes=2), {"n0": 4, "n1": 4}),
        # larger gangs take whole nodes, and the remainder the fullest node it fits on
        (nodes(4), {"n0": 4}, job("g", 16), {"n1": 8, "n2": 8}),
        (nodes(4), {"n0": 4}, job("g", 12), {"n0": 4, "n1": 8}),
        # GPU type constraint
        (nodes(1, gpu_type="a100") + nodes(1, gpu_type="h100", prefix="h"), {}, job("g", 8, gpu_type="h100"),
         {"h0": 8}),
        # spot nodes only for gangs that allow them; those prefer spot
        (nodes(1, pool=SPOT, prefix="s"), {}, job("g", 1), None),
        (nodes(1) + nodes(1, pool=SPOT, prefix="s"), {}, job("g", 1, allow_spot=True), {"s0": 1}),
        # ranks of 4 GPUs never straddle nodes
        (nodes(2), {"n0": 2, "n1": 2}, job("g", 12, gpus_per_worker=4, max_nodes=2), None),
        (nodes(2), {"n0": 2, "n1": 2}, job("g", 8, gpus_per_worker=4, max_nodes=2), {"n0": 4, "n1": 4}),
    ],
)
def test_gang_placement(cluster, busy, gang, expect) -> None:  # type: ignore[no-untyped-def]
    run = tuple(running(f"r-{n}", {n: g}) for n, g in busy.items())
    got = admitted(ClusterSnapshot(cluster, run, (gang,)), FIFO)
    assert got.get("g") == expect


def test_cordoned_node_gets_nothing_new() -> None:
    cluster = (Node("n0", 8, cordoned=True), Node("n1", 8))
    got = admitted(ClusterSnapshot(cluster, (), (job("a", 8), job("b", 8))), BACKFILL)
    assert got == {"a": {"n1": 8}}


def test_small_gangs_keep_whole_nodes_whole_for_large_ones() -> None:
    # eight 1-GPU gangs fill one node rather than scattering; the 8-GPU gang still fits
    pending = tuple(job(f"s{i}", 1, submit_time=i) for i in range(8)) + (job("big", 8, submit_time=9),)
    got = admitted(ClusterSnapshot(nodes(2), (), pending), FIFO)
    assert len({next(iter(p)) for k, p in got.items() if k != "big"}) == 1
    assert "big" in got


# -- quotas, borrowing, reclaim ---------------------------------------------------

TEAMS = (Team("vision", gpus=16, cohort="lab"), Team("nlp", gpus=16, cohort="lab"))


@pytest.mark.parametrize(
    ("teams", "busy", "gang", "admits", "reason_has"),
    [
        # within nominal quota
        (TEAMS, [], job("g", 16, team="vision"), True, None),
        # over nominal, the cohort has idle quota: borrows
        (TEAMS, [], job("g", 24, team="vision"), True, None),
        # over nominal and the lender is using its own quota: nothing to borrow
        (TEAMS, [("x", {"n2": 8, "n3": 8}, "nlp")], job("g", 24, team="vision"), False,
         "team vision at quota 0/16 GPUs, cohort lab has 16 idle"),
        # a borrowing limit caps what may be borrowed
        ((replace(TEAMS[0], borrowing_limit_gpus=4), TEAMS[1]), [], job("g", 24, team="vision"), False,
         "borrowing limit 4"),
        # no cohort: never beyond nominal
        ((Team("solo", gpus=8),), [], job("g", 16, team="solo"), False, "no cohort"),
    ],
)
def test_quota_and_borrowing(teams, busy, gang, admits, reason_has) -> None:  # type: ignore[no-untyped-def]
    run = tuple(running(i, p, team=t) for i, p, t in busy)
    d = schedule(ClusterSnapshot(nodes(4), run, (gang,), teams=teams))
    assert bool(d.admit) == admits
    if reason_has:
        assert reason_has in d.reasons["g"]


def test_lender_reclaims_borrowed_quota_by_preemption() -> None:
    # vision borrowed nlp's idle quota (24 of its nominal 16); nlp's job arrives
    run = (running("v1", {"n0": 8, "n1": 8}, team="vision"), running("v2", {"n2": 8}, team="vision"))
    d = schedule(ClusterSnapshot(nodes(3), run, (job("n", 8, team="nlp"),), teams=TEAMS, now=100))
    assert [p.job_id for p in d.preempt] == ["v2"]
    assert "reclaims" in d.preempt[0].reason
    assert d.admit[0].job_id == "n"


def test_team_within_quota_is_never_preempted_by_another_team() -> None:
    run = (running("n1", {"n0": 8, "n1": 8}, team="nlp", priority="low", preemptible=True),)
    d = schedule(ClusterSnapshot(nodes(2), run, (job("v", 8, team="vision", priority="critical"),),
                                 teams=TEAMS))
    assert not d.preempt and not d.admit


# -- fair share (DRF) -------------------------------------------------------------

@pytest.mark.parametrize(
    ("usage", "first"),
    [
        ({"a": 8, "b": 0}, "b"),  # b holds less: b goes first although a queued earlier
        ({"a": 0, "b": 8}, "a"),
    ],
)
def test_drf_orders_teams_by_dominant_share(usage, first) -> None:  # type: ignore[no-untyped-def]
    cluster = nodes(3)
    run = tuple(running(f"r{t}", {f"n{i}": g}, team=t) for i, (t, g) in enumerate(usage.items()) if g)
    pending = (job("from-a", 8, team="a", submit_time=0), job("from-b", 8, team="b", submit_time=1))
    teams = (Team("a", gpus=12, cohort="c"), Team("b", gpus=12, cohort="c"))
    d = schedule(ClusterSnapshot(cluster, run, pending, teams=teams))
    assert d.admit[0].job_id == f"from-{first}"


def test_drf_weights_scale_shares() -> None:
    run = (running("ra", {"n0": 4}, team="a"), running("rb", {"n1": 2}, team="b"))
    pending = (job("from-a", 4, team="a"), job("from-b", 4, team="b"))
    teams = (Team("a", weight=4.0), Team("b", weight=1.0))  # a: 4/16/4 < b: 2/16/1
    d = schedule(ClusterSnapshot(nodes(2), run, pending, teams=teams))
    assert d.admit[0].job_id == "from-a"


# -- priorities, preemption victims, aging ----------------------------------------

@pytest.mark.parametrize(
    ("victims", "gang", "expect"),
    [
        # the smallest set: one 8-GPU gang rather than four 2-GPU ones
        ([("big", {"n0": 8}, 0.0), *[(f"s{i}", {"n1": 2}, 0.0) for i in range(4)]], 8, {"big"}),
        # among equal sets, the least progress lost since the last checkpoint
        ([("old", {"n0": 8}, 0.0), ("fresh", {"n1": 8}, 90.0)], 8, {"fresh"}),
        # one victim on a node with room, rather than two
        ([*[(f"s{i}", {"n0": 2}, 0.0) for i in range(4)], ("e", {"n1": 6}, 0.0)], 4, {"e"}),
    ],
)
def test_preemption_picks_fewest_victims_then_least_lost(victims, gang, expect) -> None:  # type: ignore[no-untyped-def]
    run = tuple(running(i, p, priority="low", preemptible=True, last_checkpoint_time=ck)
                for i, p, ck in victims)
    d = schedule(ClusterSnapshot(nodes(2), run, (job("hi", gang, priority="high"),), now=100))
    assert {p.job_id for p in d.preempt} == expect
    assert d.admit[0].job_id == "hi"


@pytest.mark.parametrize(
    ("victim_priority", "preemptible", "preempted"),
    # `preemptible` lets a gang run in backfill gaps and on spot; lower priority is enough to yield
    [("low", True, True), ("high", True, False), ("normal", True, False), ("low", False, True)],
)
def test_only_lower_priority_work_is_preempted(victim_priority, preemptible, preempted) -> None:  # type: ignore[no-untyped-def]
    run = (running("v", {"n0": 8}, priority=victim_priority, preemptible=preemptible),)
    d = schedule(ClusterSnapshot(nodes(1), run, (job("p", 8, priority="normal"),)))
    assert bool(d.preempt) == preempted


def test_aging_lets_a_long_waiting_low_job_pass_fresh_high_ones() -> None:
    low = job("low", 8, priority="low", submit_time=0)
    fresh = [job(f"high{i}", 8, priority="high", submit_time=10_000 + i) for i in range(3)]
    # aging_s=3600: 2 classes behind, but waited ~2.8 h longer than the high jobs
    d = schedule(ClusterSnapshot(nodes(1), (), (low, *fresh), now=10_010))
    assert d.admit[0].job_id == "low"
    d = schedule(ClusterSnapshot(nodes(1), (), (replace(low, submit_time=9_000), *fresh), now=10_010))
    assert d.admit[0].job_id == "high0"


def test_smaller_expected_work_goes_first_within_a_team() -> None:
    pending = (job("long", 8, submit_time=0, expected_duration=36_000.0),
               job("short", 8, submit_time=60, expected_duration=600.0))
    d = schedule(ClusterSnapshot(nodes(1), (), pending, now=100))
    assert d.admit[0].job_id == "short"


# -- backfill ---------------------------------------------------------------------

# Submit order only, so the 16-GPU gang stays at the head whatever its size.
BY_SUBMIT = replace(TRAINYARD, ordering=Ordering(work_credit=0.0))

def _backfill_case(candidate: GangRequest) -> tuple[list[str], float]:
    # n0 is busy until t=1000; the head needs both nodes: reservation at t=1000
    run = (running("r", {"n0": 8}, expected_duration=1000.0),)
    head = job("head", 16, submit_time=0)
    d = schedule(ClusterSnapshot(nodes(2), run, (head, replace(candidate, submit_time=1)), now=0),
                 BY_SUBMIT)
    assert d.reservation is not None and d.reservation.job_id == "head"
    return [a.job_id for a in d.admit], d.reservation.at


@pytest.mark.parametrize(
    ("candidate", "starts"),
    [
        (job("short", 8, expected_duration=500.0), True),  # ends before the reservation
        (job("long", 8, expected_duration=5000.0), False),  # would delay the head
        (job("unknown", 8), False),  # no estimate: cannot promise
        (job("preemptible", 8, preemptible=True), True),  # runs, evictable by the head
    ],
)
def test_backfill_never_delays_the_reservation(candidate, starts) -> None:  # type: ignore[no-untyped-def]
    started, at = _backfill_case(candidate)
    assert (candidate.id in started) == starts
    assert at == 1000.0


def test_head_evicts_opportunistic_backfill_when_its_reservation_is_due() -> None:
    state = ClusterState(nodes(2))
    policy = Policy(BY_SUBMIT)
    queue = policy.new_queue(state)
    state.start(job("r", 8, expected_duration=1000.0), [(0, 8)], 0.0)
    queue.push(job("head", 16, submit_time=0))
    queue.push(job("opp", 8, submit_time=1, preemptible=True))
    d = policy.cycle(state, queue, 0.0)
    assert [a.job_id for a in d.admit] == ["opp"] and d.admit[0].opportunistic
    state.stop("r")  # the reservation is due
    d = policy.cycle(state, queue, 1000.0)
    assert [p.job_id for p in d.preempt] == ["opp"] and [a.job_id for a in d.admit] == ["head"]


def test_fifo_blocks_behind_the_head_and_says_so() -> None:
    run = (running("r", {"n0": 8}),)
    pending = (job("head", 16, submit_time=0), job("small", 1, submit_time=1))
    d = schedule(ClusterSnapshot(nodes(2), run, pending), FIFO)
    assert not d.admit
    assert "queued behind head" in d.reasons["small"]


# -- spot reclaim -------------------------------------------------------------------

def test_spot_reclaim_returns_whole_gangs_to_the_queue_and_they_run_elsewhere() -> None:
    cluster = nodes(1, pool=SPOT, prefix="s") + nodes(1)
    state = ClusterState(cluster)
    policy = Policy(TRAINYARD)
    queue = policy.new_queue(state)
    queue.push(job("g", 4, allow_spot=True, preemptible=True))
    assert policy.cycle(state, queue, 0.0).admit[0].placement == {"s0": 4}
    state.running["g"].gang.checkpoint_every_s = 60.0
    evicted = state.reclaim_node("s0")
    assert [g.job.id for g in evicted] == ["g"] and evicted[0].lost_seconds(90.0) == 30.0
    queue.push(evicted[0].job)
    assert policy.cycle(state, queue, 90.0).admit[0].placement == {"n0": 4}


# -- explanations -------------------------------------------------------------------

def test_every_pending_job_gets_a_reason_a_person_can_read() -> None:
    teams = (Team("vision", gpus=64, cohort="lab"), Team("nlp", gpus=64, cohort="lab"))
    run = (running("v", {f"n{i}": 8 for i in range(8)}, team="vision"),
           running("x", {f"n{i}": 8 for i in range(8, 16)}, team="nlp"))
    d = schedule(ClusterSnapshot(nodes(16), run, (job("more", 16, team="vision"),), teams=teams))
    assert d.reasons["more"] == ("needs 16 GPUs on ≤ 2 nodes (on-demand); "
                                 "team vision at quota 64/64 GPUs, cohort lab has 0 idle")


# -- a deep queue ---------------------------------------------------------------------

def test_a_cycle_reaches_small_jobs_behind_many_large_ones_that_cannot_fit() -> None:
    # one GPU free; 500 8-GPU gangs queued first; the walk may look at only 20 jobs
    run = (running("r", {"n0": 7}),)
    pending = tuple(job(f"big{i}", 8, submit_time=i) for i in range(500)) + (job("small", 1, submit_time=600,
                                                                              expected_duration=60.0),)
    config = replace(BY_SUBMIT, max_considered=20)
    d = schedule(ClusterSnapshot(nodes(1), run, pending, now=700), config)
    assert [a.job_id for a in d.admit] == ["small"]
    assert d.reasons["big499"] == ("needs 8 GPUs on ≤ 1 node (on-demand); "
                                   "0 matching GPUs free, at most 0 on one node, 0 whole nodes free")


@pytest.mark.parametrize(
    ("now", "gang", "every", "duration", "preempted"),
    [
        # just after the victim's checkpoint: it loses 100 s x 8 GPUs, the job would wait 1,700 s
        (100.0, 8, 1800.0, None, True),
        # just before the next checkpoint: 1,700 s x 8 GPUs lost against 100 s of waiting
        (1700.0, 8, 1800.0, None, False),
        # the checkpoint at 1,800 s has been taken: cheap again
        (1850.0, 8, 1800.0, None, True),
        # the victim ends in 50 s: waiting for that beats throwing away its work
        (1700.0, 8, 1800.0, 1750.0, False),
        # a 1-GPU job gains little by evicting 8 GPUs of work, unless little is lost
        (1000.0, 1, 1800.0, None, False),
        (10.0, 1, 1800.0, None, True),
        # no checkpoint period: nothing to wait for, preempt as before
        (1700.0, 8, None, None, True),
    ],
)
def test_preemption_waits_when_victims_lose_more_than_the_job_gains(  # type: ignore[no-untyped-def]
        now, gang, every, duration, preempted) -> None:
    victim = RunningGang(job("v", 8, priority="low", expected_duration=duration), {"n0": 8}, 0.0,
                         checkpoint_every_s=every)
    d = schedule(ClusterSnapshot(nodes(1), (victim,), (job("hi", gang, priority="high"),), now=now))
    assert bool(d.preempt) == preempted
    assert [a.job_id for a in d.admit] == (["hi"] if preempted else [])
