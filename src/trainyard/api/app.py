"""The FastAPI app: routers and error shapes over one platform.

Serving the api never starts the control loop: whoever opens the platform
starts it, or not (`yard server`), so two api processes never run two loops by
accident. The app closes the platform it serves when it shuts down, stopping
the loop if one runs, before uvicorn hands a SIGTERM back to the process.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from trainyard.api import audit_trail, errors, limits, rate_limits
from trainyard.api.auth import Authenticator, authenticate
from trainyard.api.hosts import AllowedHosts
from trainyard.api.platform import Platform
from trainyard.api.rate_limits import throttle
from trainyard.api.routers import attempts, audit, code, datasets, jobs, lineage, models, runs, sweeps, teams


def create_app(platform: Platform) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # What start-up made lives as long as the server: out of the collector's sight, a full
        # collection (which a burst of requests can trigger) scans only what came after.
        gc.freeze()
        # Checks and hashing run in threads next to the event loop: hand the GIL over every 1 ms,
        # not 5, so that a CPU-bound thread adds less to each request's waits (p99 under abuse).
        sys.setswitchinterval(0.001)
        try:
            yield
        finally:
            platform.close()

    app = FastAPI(
        title="trainyard",
        version="0.1.0",
        description="Submit, schedule, run, checkpoint and recover distributed PyTorch training jobs.",
        lifespan=lifespan,
    )
    app.state.platform = platform
    app.add_middleware(AllowedHosts, hosts=platform.config.allowed_hosts or ())
    errors.install(app)
    limits.install(app)
    rate_limits.install(app)
    audit_trail.install(app)  # outermost: it records the other middlewares' refusals too
    app.state.authenticator = Authenticator(platform.store)
    # Every router's every route asks who is calling, then counts a write against its token's rate
    # limit: a route added later is authenticated and limited too (and audited, by the middleware).
    for module in (jobs, attempts, code, runs, sweeps, teams, datasets, models, lineage, audit):
        app.include_router(module.router, dependencies=[Depends(authenticate), Depends(throttle)])

    @app.get("/healthz", tags=["server"])
    async def healthz() -> dict[str, str]:  # on the event loop itself: it answers while the loop does
        return {"status": "ok"}

    return app
