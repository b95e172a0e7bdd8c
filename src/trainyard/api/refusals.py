"""How fast one client's refused uploads are answered: no faster than the server can afford to waste.

A refused body was read for nothing (up to its limit: 16 MiB of metric batch, 200 MiB of code
archive), and a client that sends such bodies in a loop sends the next one as soon as the last is
answered. So each client (by address, until requests carry a token) has a budget of refused bytes:
256 MiB at once, refilled at 32 MiB a second. A refusal past it is held, the connection idle and the
rest of its body unread, until the budget covers it (at most 30 s), then answered as ever. Accepted
requests are never held, and a client refused now and then never notices.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

MiB = 1 << 20


@dataclass
class RefusalBudget:
    rate: float = 32 * MiB  # refused bytes a second, per client
    burst: float = 256 * MiB
    per_refusal: int = 64 << 10  # what any refusal costs, a body read or not (a connection, a parse)
    max_hold_s: float = 30.0
    max_held: int = 256  # refusals held at once, all clients together: each keeps a connection open
    max_clients: int = 10_000
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)  # client -> (level, when)
    _held: int = 0

    def charge(self, client: str, wasted: int) -> float:
        """Count a refusal of `wasted` body bytes against `client`: the seconds to hold it."""
        now = self.clock()
        level, then = self._buckets.get(client, (self.burst, now))
        level = min(self.burst, level + (now - then) * self.rate) - wasted - self.per_refusal
        level = max(level, -self.max_hold_s * self.rate)  # a debt paid off within one longest hold
        self._buckets[client] = (level, now)
        if len(self._buckets) > self.max_clients:
            self._forget_settled(now)
        return max(0.0, -level / self.rate)

    async def hold(self, client: str, wasted: int) -> None:
        """Wait as long as `client`'s refusal must be held (no longer, if too many are held already)."""
        seconds = self.charge(client, wasted)
        if seconds <= 0 or self._held >= self.max_held:
            return
        self._held += 1
        try:
            await asyncio.sleep(seconds)
        finally:
            self._held -= 1

    def _forget_settled(self, now: float) -> None:
        """Drop clients whose budget has refilled: they would start afresh anyway."""
        for client, (level, then) in list(self._buckets.items()):
            if level + (now - then) * self.rate >= self.burst:
                del self._buckets[client]
