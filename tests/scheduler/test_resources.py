"""CPUs and memory count like GPUs: victims free what the pending gang lacks on a node,
and a waiting gang's reason names the resource that is short."""

from __future__ import annotations

import pytest

from trainyard.scheduler.model import ClusterSnapshot, GangRequest, Node, RunningGang
from trainyard.scheduler.policy import schedule

LOCAL = (Node("local", gpus=0, cpus=2, memory_gb=24),)  # a CPU-only machine, as the platform runs on


def gang(id: str, gpus: int = 0, cpus: float = 0.0, memory_gb: float = 0.0, **kw: object) -> GangRequest:
    return GangRequest(id, gpus, cpus=cpus, memory_gb=memory_gb, **kw)  # type: ignore[arg-type]


def low(id: str, placement: dict[str, int], cpus: float = 0.0, memory_gb: float = 0.0,
        checkpoint: float | None = None) -> RunningGang:
    job = gang(id, sum(placement.values()), cpus, memory_gb, priority="low")
    return RunningGang(job, placement, 0.0, last_checkpoint_time=checkpoint)


@pytest.mark.parametrize(
    ("cluster", "running", "pending", "victims", "placement"),
    [
        # the control loop's case: one 2-CPU node, a low 2-CPU job holds it, a high 2-CPU job arrives
        (LOCAL, [low("lo", {"local": 0}, cpus=2)], gang("hi", cpus=2, priority="high"),
         {"lo"}, {"local": 0}),
        # ... and with memory asked too
        (LOCAL, [low("lo", {"local": 0}, cpus=2, memory_gb=1)],
         gang("hi", cpus=2, memory_gb=1, priority="high"), {"lo"}, {"local": 0}),
        # room on the node already: nobody is preempted
        (LOCAL, [low("lo", {"local": 0}, cpus=1)], gang("hi", cpus=1, priority="high"), set(), {"local": 0}),
        # two 1-CPU victims are needed for 2 CPUs
        (LOCAL, [low("a", {"local": 0}, cpus=1), low("b", {"local": 0}, cpus=1)],
         gang("hi", cpus=2, priority="high"), {"a", "b"}, {"local": 0}),
        # one victim that frees enough beats two that each free a little
        ((Node("n0", 0, cpus=4),), [low("a", {"n0": 0}, cpus=1), low("b", {"n0": 0}, cpus=1),
                                     low("c", {"n0": 0}, cpus=2)],
         gang("hi", cpus=2, priority="high"), {"c"}, {"n0": 0}),
        # memory is what is short: the gang holding memory goes, not the one holding CPUs
        ((Node("n0", 0, cpus=4, memory_gb=16),),
         [low("mem", {"n0": 0}, cpus=1, memory_gb=14), low("cpu", {"n0": 0}, cpus=2, memory_gb=1)],
         gang("hi", cpus=1, memory_gb=8, priority="high"), {"mem"}, {"n0": 0}),
        # a GPU gang short of GPUs and CPUs: the victim that frees both, not the one with more GPUs
        ((Node("n0", 8, cpus=16),), [low("cpu-heavy", {"n0": 2}, cpus=14), low("gpu-heavy", {"n0": 4}, cpus=1)],
         gang("hi", 4, cpus=8, priority="high"), {"cpu-heavy"}, {"n0": 4}),
        # a GPU gang with GPUs free but no CPUs left on the node
        ((Node("n0", 8, cpus=8),), [low("lo", {"n0": 1}, cpus=8)], gang("hi", 4, cpus=4, priority="high"),
         {"lo"}, {"n0": 4}),
        # a two-node GPU gang: a CPU-only gang holding a node's CPUs must go for it
        ((Node("n0", 8, cpus=16), Node("n1", 8, cpus=16)), [low("cpu-job", {"n0": 0}, cpus=16)],
         gang("hi", 16, cpus=32, priority="high"), {"cpu-job"}, {"n0": 8, "n1": 8}),
        # among equal victims, the least progress lost since the last checkpoint
        ((Node("n0", 0, cpus=2), Node("n1", 0, cpus=2)),
         [low("old", {"n0": 0}, cpus=2, checkpoint=0.0), low("fresh", {"n1": 0}, cpus=2, checkpoint=95.0)],
         gang("hi", cpus=2, priority="high"), {"fresh"}, {"n1": 0}),
    ],
)
def test_victims_free_the_resources_the_pending_gang_lacks(cluster, running, pending, victims,  # type: ignore[no-untyped-def]
                                                           placement) -> None:
    d = schedule(ClusterSnapshot(cluster, tuple(running), (pending,), now=100.0))
    assert {p.job_id for p in d.preempt} == victims
    assert [(a.job_id, a.placement) for a in d.admit] == [(pending.id, placement)]


@pytest.mark.parametrize(
    ("cluster", "running", "pending"),
    [
        # same priority: nothing to preempt
        (LOCAL, [RunningGang(gang("lo", cpus=2), {"local": 0}, 0.0)], gang("p", cpus=2)),
        # victims could free the GPUs but not the CPUs the gang needs: a higher job holds them
        ((Node("n0", 8, cpus=8),),
         [low("lo", {"n0": 4}, cpus=1), RunningGang(gang("keep", 0, cpus=6, priority="critical"), {"n0": 0}, 0.0)],
         gang("hi", 8, cpus=4, priority="high")),
    ],
)
def test_no_preemption_when_victims_cannot_free_a_fitting_node(cluster, running, pending) -> None:  # type: ignore[no-untyped-def]
    d = schedule(ClusterSnapshot(cluster, tuple(running), (pending,), now=100.0))
    assert not d.preempt and not d.admit


@pytest.mark.parametrize(
    ("cluster", "running", "pending", "reason"),
    [
        (LOCAL, [RunningGang(gang("lo", cpus=2), {"local": 0}, 0.0)], gang("p", cpus=2),
         "needs 2 CPUs on 1 node (on-demand); 0 of 2 CPUs free on local"),
        (LOCAL, [RunningGang(gang("lo", cpus=1, memory_gb=20), {"local": 0}, 0.0)],
         gang("p", cpus=1, memory_gb=8),
         "needs 1 CPU, 8 GB memory on 1 node (on-demand); 4 of 24 GB memory free on local"),
        ((Node("a", 0, cpus=2), Node("b", 0, cpus=2)),
         [RunningGang(gang("x", cpus=1), {"a": 0}, 0.0), RunningGang(gang("y", cpus=2), {"b": 0}, 0.0)],
         gang("p", cpus=2), "needs 2 CPUs on 1 node (on-demand); at most 1 of 2 CPUs free on one of 2 nodes (a)"),
        # a GPU gang: the GPUs are there, the CPUs are not
        ((Node("n0", 8, cpus=8),), [RunningGang(gang("lo", 1, cpus=8), {"n0": 1}, 0.0)], gang("p", 4, cpus=4),
         "needs 4 GPUs, 4 CPUs on ≤ 1 node (on-demand); 7 matching GPUs free, at most 7 on one node, "
         "0 whole nodes free; 0 of 8 CPUs free on n0"),
        # a GPU gang short of GPUs: the reason is about GPUs
        ((Node("n0", 8, cpus=8),), [RunningGang(gang("lo", 6, cpus=1), {"n0": 6}, 0.0)], gang("p", 4, cpus=4),
         "needs 4 GPUs, 4 CPUs on ≤ 1 node (on-demand); 2 matching GPUs free, at most 2 on one node, "
         "0 whole nodes free"),
    ],
)
def test_reason_names_the_resource_that_is_short(cluster, running, pending, reason) -> None:  # type: ignore[no-untyped-def]
    d = schedule(ClusterSnapshot(cluster, tuple(running), (pending,), now=100.0))
    assert not d.admit
    assert d.reasons[pending.id].startswith(reason), d.reasons[pending.id]
