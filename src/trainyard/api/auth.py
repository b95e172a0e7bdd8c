"""Authentication: every route but /healthz asks who is calling, through one dependency.

`authenticate` reads the bearer token, resolves it to a `Principal` (a user, a service account,
or one attempt's ranks) and puts it on the request for the audit. Routes take it as
`CurrentUser` and hand it to the services, which filter every list and refuse every object by
it; nothing is checked by hand in a route body.

Resolved tokens are kept for a moment (`TTL_S`) so that a hot route (metric batches, job
reads) does not query the token tables each time; revoking a token, or changing a membership,
through this process drops the cache at once, and other processes see it within `TTL_S`.
"""

from __future__ import annotations

import threading
import time
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from trainyard.auth import identity, tokens
from trainyard.principal import Forbidden, Principal
from trainyard.store import Store

TTL_S = 2.0
MAX_CACHED = 10_000

HOW = ("pass `Authorization: Bearer <token>`; the yard CLI reads TRAINYARD_TOKEN, then `yard login`'s "
       "store, then $TRAINYARD_HOME/token on the server's own machine")

bearer = HTTPBearer(auto_error=False, description="An API token (`yard tokens create`), or a rank's own.")


class Authenticator:
    """Tokens to principals, with a short-lived cache keyed by the token's digest."""

    def __init__(self, store: Store, ttl_s: float = TTL_S):
        self.store = store
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def cached(self, token: str) -> Principal | None:
        hit = self._cache.get(tokens.digest(token))
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    def resolve(self, token: str) -> Principal | None:
        with self.store.session() as s:
            who = identity.resolve(s, token)
        if who is not None:
            with self._lock:
                if len(self._cache) >= MAX_CACHED:
                    self._cache.clear()
                self._cache[tokens.digest(token)] = (time.monotonic() + self.ttl_s, who)
        return who

    def forget(self) -> None:
        """Roles or tokens changed: resolve every token afresh."""
        with self._lock:
            self._cache.clear()


def unauthorized(message: str) -> HTTPException:
    return HTTPException(401, detail=message, headers={"WWW-Authenticate": "Bearer"})


async def authenticate(request: Request,
                       credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Principal:
    if credentials is None:
        raise unauthorized(f"this route needs a token: {HOW}")
    token = credentials.credentials
    if len(token) > tokens.MAX_LENGTH:
        raise unauthorized("that token is not one of this server's: it is too long")
    auth: Authenticator = request.app.state.authenticator
    who = auth.cached(token)
    if who is None:
        who = await run_in_threadpool(auth.resolve, token)  # a store read: off the event loop
    if who is None:
        raise unauthorized("that token is unknown, expired or revoked: ask for a new one "
                           "(`yard tokens create`) or log in again (`yard login`)")
    request.state.principal = who
    return who


CurrentUser = Annotated[Principal, Depends(authenticate)]


def platform_admin(who: CurrentUser) -> Principal:
    """A route for platform admins only (teams, priority classes, nodes, users)."""
    if not who.platform_admin:
        raise Forbidden("this takes a platform admin's token: ask a platform admin to do it")
    return who


PlatformAdmin = Annotated[Principal, Depends(platform_admin)]
