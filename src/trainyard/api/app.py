"""The FastAPI app: routers and error shapes over one platform.

Serving the api never starts the control loop: whoever opens the platform
starts it, or not (`yard server`), so two api processes never run two loops by
accident. The app closes the platform it serves when it shuts down, stopping
the loop if one runs, before uvicorn hands a SIGTERM back to the process.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from trainyard.api import audit_trail, bodies, errors, limits, rate_limits
from trainyard.api.auth import Authenticator, authenticate
from trainyard.api.hosts import AllowedHosts
from trainyard.api.platform import Platform
from trainyard.api.rate_limits import throttle
from trainyard.api.routers import (
    attempts,
    audit,
    code,
    datasets,
    identity,
    jobs,
    lineage,
    models,
    runs,
    secrets,
    sweeps,
    teams,
)


def create_app(platform: Platform) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # What start-up made (~150,000 objects) lives as long as the server: out of the collector's
        # sight, a full collection (70-140 ms holding the GIL, on the 2-core test machine; a burst of
        # requests can trigger one) scans only what came after.
        gc.freeze()
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
    bodies.install(app)
    limits.install(app)
    rate_limits.install(app)
    audit_trail.install(app)  # outermost: it records the other middlewares' refusals too
    app.state.authenticator = Authenticator(platform.store)
    # Every router's every route asks who is calling, then counts a write against its token's rate
    # limit: a route added later is authenticated and limited too (and audited, by the middleware).
    for module in (jobs, attempts, code, runs, sweeps, teams, identity, secrets, datasets, models, lineage,
                   audit):
        app.include_router(module.router, dependencies=[Depends(authenticate), Depends(throttle)])

    @app.get("/healthz", tags=["server"])
    async def healthz() -> dict[str, str]:  # on the event loop itself: it answers while the loop does
        return {"status": "ok"}

    return app
