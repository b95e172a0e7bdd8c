"""The pending queue: one heap per team, ordered by a key fixed at submit.

The key is a virtual start time: submit time, minus `aging_s` per priority class,
plus a credit for small expected work (capped). Because it never changes, a job
only ever moves forward as newer jobs queue behind it — that is the aging that
keeps anything from starving — and no cycle has to re-sort the queue.

A team's heap is split into lanes, one per shape of gang (GPUs, constraints, CPUs,
memory, class): every job in a lane fits or fails alike, so once one has found no
room a cycle skips the rest of its lane instead of trying each of them. The
team's head is the best head over its lanes, so the order is unchanged.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass

from trainyard.scheduler.model import GangRequest

FIFO_TEAM = "*"


@dataclass(frozen=True, slots=True)
class Ordering:
    fair: bool = True  # one heap per team, teams picked by DRF; False: one FIFO heap
    aging_s: float = 3600.0  # waiting this long is worth one priority class
    work_credit: float = 1.0  # seconds of queue position per GPU-second of expected work
    work_cap_s: float = 7 * 86400.0  # most a job can be held back for being large
    default_duration_s: float = 3600.0  # assumed when a job gives no expected_duration
    starve_after_s: float = 86400.0  # waited longer than this: ahead of every team's work
    borrow_by_size: bool = True  # borrowed quota goes by job key, not DRF (see policy._team_key)
    fair_share_half_life_s: float = 6 * 3600.0  # how fast a team's past usage is forgotten


Entry = tuple[float, int, GangRequest]
Lane = tuple[object, ...]
NO_SKIP: frozenset[Lane] = frozenset()


def lane_of(job: GangRequest) -> Lane:
    """Jobs that one placement and victim search answer for alike."""
    return (job.gpus, job.gpu_type, job.zone, job.allow_spot, job.gpus_per_worker, job.max_nodes,
            job.cpus, job.memory_gb, job.priority)


class PendingQueue:
    def __init__(self, ordering: Ordering, priority: Callable[[GangRequest], int]) -> None:
        self.ordering = ordering
        self.priority = priority
        self.heaps: dict[str, dict[Lane, list[Entry]]] = {}  # team -> lane -> heap
        self.live: dict[str, int] = {}  # job id -> sequence of its live entry
        self.jobs: dict[str, GangRequest] = {}
        self.sizes: Counter[int] = Counter()  # GPUs -> pending gangs of that size
        self.team_sizes: dict[str, Counter[int]] = {}
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self.live)

    def __contains__(self, job_id: str) -> bool:
        return job_id in self.live

    def key(self, job: GangRequest) -> float:
        o = self.ordering
        if not o.fair:
            return job.submit_time
        key = job.submit_time - self.priority(job) * o.aging_s
        if o.work_credit:
            duration = job.expected_duration or o.default_duration_s
            key += min(o.work_credit * duration * max(1, job.gpus), o.work_cap_s)
        return key

    def push(self, job: GangRequest) -> None:
        seq = next(self._seq)
        team = job.team if self.ordering.fair else FIFO_TEAM
        heapq.heappush(self.heaps.setdefault(team, {}).setdefault(lane_of(job), []), (self.key(job), seq, job))
        old = self.jobs.get(job.id)
        if old is not None:
            self._forget_size(old)
        self.live[job.id] = seq
        self.jobs[job.id] = job
        self.sizes[job.gpus] += 1
        self.team_sizes.setdefault(team, Counter())[job.gpus] += 1

    def remove(self, job_id: str) -> GangRequest | None:
        self.live.pop(job_id, None)
        job = self.jobs.pop(job_id, None)
        if job is not None:
            self._forget_size(job)
        return job

    def _forget_size(self, job: GangRequest) -> None:
        for sizes in (self.sizes, self.team_sizes[job.team if self.ordering.fair else FIFO_TEAM]):
            sizes[job.gpus] -= 1
            if not sizes[job.gpus]:
                del sizes[job.gpus]

    def smallest_gpus(self, team: str | None = None) -> int | None:
        sizes = self.sizes if team is None else self.team_sizes.get(team)
        return min(sizes) if sizes else None

    def head(self, team: str, skip: Collection[Lane] = NO_SKIP) -> Entry | None:
        """The team's first live entry outside the `skip` lanes (dropping removed ones)."""
        found = self._head(team, skip)
        return None if found is None else found[0]

    def _head(self, team: str, skip: Collection[Lane]) -> tuple[Entry, list[Entry]] | None:
        lanes = self.heaps.get(team)
        if not lanes:
            return None
        live = self.live
        best: tuple[Entry, list[Entry]] | None = None
        empty = []
        for lane, heap in lanes.items():
            while heap:
                entry = heap[0]
                if live.get(entry[2].id) == entry[1]:
                    break
                heapq.heappop(heap)
            if not heap:
                empty.append(lane)
            elif lane not in skip and (best is None or heap[0][:2] < best[0][:2]):
                best = (heap[0], heap)
        for lane in empty:
            del lanes[lane]
        return best

    def pop(self, team: str, skip: Collection[Lane] = NO_SKIP) -> Entry:
        found = self._head(team, skip)
        assert found is not None, f"team {team} has nothing to pop"
        return heapq.heappop(found[1])

    def put_back(self, entries: list[Entry]) -> None:
        fair = self.ordering.fair
        for entry in entries:
            job = entry[2]
            if self.live.get(job.id) == entry[1]:
                team = job.team if fair else FIFO_TEAM
                heapq.heappush(self.heaps.setdefault(team, {}).setdefault(lane_of(job), []), entry)

    def in_order(self) -> list[GangRequest]:
        """Every pending job by key (for explanations and tests; not used per cycle)."""
        entries = [e for lanes in self.heaps.values() for h in lanes.values() for e in h
                   if self.live.get(e[2].id) == e[1]]
        return [e[2] for e in sorted(entries, key=lambda e: (e[0], e[1]))]
