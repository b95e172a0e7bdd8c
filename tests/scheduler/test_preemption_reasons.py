"""Every preemption says its true cause, as a table: cluster state in, preemptions out,
one row (at least) per `PreemptCause`."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from trainyard.scheduler.model import (
    SPOT,
    ClusterSnapshot,
    GangRequest,
    Node,
    Preempt,
    PreemptCause,
    RunningGang,
    Team,
)
from trainyard.scheduler.policy import TRAINYARD, Policy, reclaim_spot_node, schedule
from trainyard.scheduler.state import ClusterState

Decide = Callable[[], list[Preempt]]
TEAMS = (Team("vision", gpus=16, cohort="lab"), Team("nlp", gpus=16, cohort="lab"))


def nodes(n: int, prefix: str = "n", **kw: object) -> tuple[Node, ...]:
    return tuple(Node(f"{prefix}{i}", 8, **kw) for i in range(n))  # type: ignore[arg-type]


def job(id: str, gpus: int, **kw: object) -> GangRequest:
    return GangRequest(id, gpus, **kw)  # type: ignore[arg-type]


def gang(id: str, placement: dict[str, int], start: float = 0.0, every: float | None = None,
         opportunistic: bool = False, **kw: object) -> RunningGang:
    return RunningGang(job(id, sum(placement.values()), **kw), placement, start, checkpoint_every_s=every,
                       opportunistic=opportunistic)


def scheduled(cluster: tuple[Node, ...], running: tuple[RunningGang, ...], pending: tuple[GangRequest, ...],
              teams: tuple[Team, ...] = (), now: float = 100.0) -> Decide:
    return lambda: schedule(ClusterSnapshot(cluster, running, pending, teams=teams, now=now)).preempt


def spot_reclaimed() -> list[Preempt]:
    """A gang on a spot node that checkpoints every 60 s; the node is taken back at 90 s."""
    state = ClusterState(nodes(1, prefix="s", pool=SPOT) + nodes(1))
    policy = Policy(TRAINYARD)
    queue = policy.new_queue(state)
    queue.push(job("g", 4, allow_spot=True, preemptible=True))
    policy.cycle(state, queue, 0.0)
    state.running["g"].gang.checkpoint_every_s = 60.0
    return reclaim_spot_node(state, "s0", 90.0)


CASES: list[tuple[str, Decide, tuple[str, str, PreemptCause, str]]] = [
    ("a higher class takes a lower one's node",
     scheduled(nodes(1), (gang("v", {"n0": 8}, priority="low"),), (job("p", 8),)),
     ("v", "p", PreemptCause.HIGHER_PRIORITY, "preempted for p (priority normal over low)")),
    ("the lender takes back the quota vision borrowed",
     scheduled(nodes(3), (gang("v1", {"n0": 8, "n1": 8}, team="vision"), gang("v2", {"n2": 8}, team="vision")),
               (job("n", 8, team="nlp"),), TEAMS),
     ("v2", "n", PreemptCause.QUOTA_RECLAIM, "team nlp reclaims its quota lent to team vision, for n")),
    ("backfill on a reservation's nodes gives way to work of its class",
     scheduled(nodes(1), (gang("opp", {"n0": 8}, opportunistic=True, preemptible=True),), (job("head", 8),)),
     ("opp", "head", PreemptCause.BACKFILL_EVICTION,
      "evicted for head from the reservation's nodes, where it ran as opportunistic backfill")),
    # nlp is within its quota: its lower class alone would not let vision's job take the node
    ("lower-class backfill of a team within its quota is evicted as backfill, not for its class",
     scheduled(nodes(1), (gang("opp", {"n0": 8}, opportunistic=True, team="nlp", priority="low"),),
               (job("v", 8, team="vision"),), TEAMS),
     ("opp", "v", PreemptCause.BACKFILL_EVICTION,
      "evicted for v from the reservation's nodes, where it ran as opportunistic backfill")),
    ("long work gives way to much shorter work just after its checkpoint",
     scheduled(nodes(1), tuple(gang(f"v{i}", {"n0": 1}, every=1800.0, expected_duration=36_000.0,
                                    preemptible=True) for i in range(8)),
               (job("short", 1, expected_duration=600.0),), now=5460.0),
     ("v0", "short", PreemptCause.SHORTER_WORK,
      "long work gives way to much shorter work: short expects 0.2 GPU-hours, this gang has 8.5 GPU-hours "
      "left; its last checkpoint was 60 s ago")),
    ("a small gang moves so a whole-node gang starts",
     scheduled(nodes(2), (gang("small", {"n0": 1}, preemptible=True), gang("fixed", {"n1": 7})), (job("g8", 8),)),
     ("small", "g8", PreemptCause.MOVE,
      "moved off n0 to make room for g8 (8 GPUs on 1 node(s)); room for it is free elsewhere")),
    ("a spot node is reclaimed",
     spot_reclaimed,
     ("g", "", PreemptCause.SPOT_RECLAIM, "spot node s0 was reclaimed; 30 s since its last checkpoint are lost")),
]


@pytest.mark.parametrize(("case", "decide", "expect"), CASES, ids=[c[0] for c in CASES])
def test_a_preemption_says_its_true_cause(case: str, decide: Decide,
                                          expect: tuple[str, str, PreemptCause, str]) -> None:
    assert [(p.job_id, p.for_job, p.cause, p.reason) for p in decide()] == [expect], case


def test_the_table_covers_every_cause() -> None:
    assert {expect[2] for _, _, expect in CASES} == set(PreemptCause)


def test_only_a_move_counts_as_a_move() -> None:
    for _, decide, (_, _, cause, _) in CASES:
        assert [p.move for p in decide()] == [cause is PreemptCause.MOVE]
