"""Write rate limits per token: a token bucket each, answered 429 with when to retry.

Every write (any method but GET, HEAD and OPTIONS) takes one unit from its token's bucket, which
holds `burst` units and refills at `rate` a second (ServerConfig.write_rate, write_burst:
20 a second, bursts of 100, unless TRAINYARD_WRITE_RATE / TRAINYARD_WRITE_BURST or
`yard server --write-rate/--write-burst` say otherwise). Ingestion (api/ingestion.py: an
attempt's heartbeats, metric batches, events and checkpoint commits, a run's metric batches,
dataset contents) takes nothing, so a fast job never throttles itself; nor does a call without a
valid token, which `authenticate` refuses (401) before this gate.

The buckets live in the memory of each server process: an api process beside another
(`yard server --no-control-loop`) keeps its own, so a token may write up to `rate` a second to
each, and a restart refills every bucket.
"""

from __future__ import annotations

import math
import time
from datetime import timedelta

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from trainyard.api.auth import CurrentUser
from trainyard.api.ingestion import is_audited_write
from trainyard.store.base import utcnow

MAX_BUCKETS = 100_000  # past this many tokens seen, the full buckets (as good as new) are dropped


class WriteBuckets:
    """One token bucket per token id; used from the event loop only, so it needs no lock."""

    def __init__(self, rate: float, burst: int):
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (units left, when)

    def take(self, key: str) -> float:
        """Take one unit: 0.0 if there was one, else the seconds until there will be."""
        now = time.monotonic()
        units, then = self._buckets.get(key, (float(self.burst), now))
        units = min(float(self.burst), units + (now - then) * self.rate)
        if units >= 1.0:
            if len(self._buckets) >= MAX_BUCKETS and key not in self._buckets:
                self._forget_full(now)
            self._buckets[key] = (units - 1.0, now)
            return 0.0
        self._buckets[key] = (units, now)
        return (1.0 - units) / self.rate

    def _forget_full(self, now: float) -> None:
        self._buckets = {k: (u, t) for k, (u, t) in self._buckets.items()
                         if u + (now - t) * self.rate < self.burst}


class Throttled(Exception):
    def __init__(self, wait_s: float, rate: float, burst: int):
        self.wait_s, self.rate, self.burst = wait_s, rate, burst

    def response(self) -> JSONResponse:
        retry_at = utcnow() + timedelta(seconds=self.wait_s)
        return JSONResponse(
            {"detail": f"too many writes with this token: at most {self.rate:g} a second, {self.burst} at once; "
                       f"retry in {self.wait_s:.2f} s (at {retry_at.isoformat(timespec='milliseconds')}), "
                       "or spread the writes out",
             "retry_after_s": round(self.wait_s, 3), "retry_at": retry_at.isoformat()},
            status_code=429, headers={"Retry-After": str(max(1, math.ceil(self.wait_s)))})


async def throttle(request: Request, who: CurrentUser) -> None:
    """A gate every router passes after `authenticate`: a write takes one unit of its token's bucket."""
    if not is_audited_write(request.method, request.scope["path"]):
        return
    buckets: WriteBuckets = request.app.state.write_buckets
    wait_s = buckets.take(who.token_id or f"user:{who.name}")
    if wait_s:
        raise Throttled(wait_s, buckets.rate, buckets.burst)


def install(app: FastAPI) -> None:
    config = app.state.platform.config
    app.state.write_buckets = WriteBuckets(config.write_rate, config.write_burst)

    @app.exception_handler(Throttled)
    async def _throttled(_: Request, exc: Throttled) -> JSONResponse:
        return exc.response()
