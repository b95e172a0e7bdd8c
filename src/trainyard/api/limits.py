"""Request body limits per route, enforced while the body streams in.

A declared Content-Length over the route's limit is answered 413 before a byte of the body is
read; a chunked body is counted as it arrives and refused the moment its total passes the limit.
Either way the server never holds more than one route limit of a body, never reads the rest of
a body it has answered (the connection closes), and the 413 says which limit applies and what to
do instead (a client refused over and over has its refusals held back: api/refusals.py):

    {"errors": [{"field": "(body)", "message": "a metric batch is at most 16 MiB (this one is
    286 MiB); split it into requests of at most 10,000 points, as the runtime does"}]}

The limits are set so that no client of ours is ever refused: the runtime sends at most
10,000 metric points per request (a few MiB even with 250-character keys as JSON).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar

from anyio import CapacityLimiter, to_thread
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from trainyard.api.refusals import RefusalBudget
from trainyard.storage.code_archive import MAX_ARCHIVE_BYTES

MiB = 1 << 20
GiB = 1 << 30
T = TypeVar("T")
# Checking an archive can take seconds (a worker process does the CPU work; a thread here feeds it and
# waits): two at a time, counted apart from the thread limiter that heartbeats and every sync route
# wait on, so that a flood of archives never holds those up.
HEAVY_WORK = CapacityLimiter(2)


@dataclass(frozen=True)
class BodyLimit:
    """The most bytes one request body may carry on the routes `path` matches."""

    max_bytes: int
    what: str  # the body, as a person would name it: "a metric batch"
    fix: str  # what to send instead
    method: str = ""
    path: str = ""  # a regular expression, matched against the whole path

    def refusal(self, size: int | None) -> dict[str, list[dict[str, str]]]:
        this = f" (this one is {_mib(size)})" if size is not None else ""
        return {"errors": [{"field": "(body)",
                            "message": f"{self.what} is at most {_mib(self.max_bytes)}{this}; {self.fix}"}]}


def _mib(n: int) -> str:
    return f"{-(-n // MiB)} MiB" if n % MiB else f"{n // MiB} MiB"


_METRICS = BodyLimit(16 * MiB, "a metric batch",
                     "split it into requests of at most 10,000 points, as the runtime does")
ROUTE_LIMITS = (
    replace(_METRICS, method="POST", path=r"/v1/runs/[^/]+/metrics"),
    replace(_METRICS, method="POST", path=r"/v1/training-jobs/[^/]+/attempts/[^/]+/metrics"),
    BodyLimit(MAX_ARCHIVE_BYTES, "a code archive",
              "keep data out of the code directory (make it a dataset with `yard dataset create`)",
              "POST", r"/v1/code-archives"),
    BodyLimit(16 * GiB, "an artifact", "split the file, or store it as a dataset",
              "PUT", r"/v1/runs/[^/]+/artifacts/.+"),
    BodyLimit(64 * GiB, "a dataset file", "split it into shards of at most 64 GiB",
              "PUT", r"/v1/dataset-blobs/[^/]+"),
    # ~230,000 files of a typical path: FastAPI parses a JSON body on the event loop, so this bounds that too
    BodyLimit(32 * MiB, "a dataset manifest",
              "pack small files into shards, or split the dataset into several snapshots",
              "POST", r"/v1/datasets|/v1/dataset-blobs/missing"),
)
DEFAULT_LIMIT = BodyLimit(4 * MiB, "a request body",
                          "specs, params and filters are small: move data into a dataset or an artifact")


def limit_for(method: str, path: str) -> BodyLimit:
    for limit in ROUTE_LIMITS:
        if method == limit.method and re.fullmatch(limit.path, path):
            return limit
    return DEFAULT_LIMIT


class BodyTooLarge(HTTPException):
    """Raised from `receive` once a streamed body passes its limit; answered 413 by the handler below."""

    def __init__(self, limit: BodyLimit):
        super().__init__(413)
        self.limit = limit


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _has_body(scope: Scope, declared: int | None) -> bool:
    if declared is not None:
        return declared > 0
    return any(name == b"transfer-encoding" for name, _ in scope["headers"])


# An answer sent before its request's body was read closes the connection: left open, the server
# would read and drop the rest of the body (uvicorn does, to reach the next request), however large
# the client declares it. HTTP/1.1 lets a server close here; clients read the answer first.
_CLOSE = (b"connection", b"close")


def _closing(start: Message) -> Message:
    return {**start, "headers": [*start.get("headers", []), _CLOSE]}


def _closing_send(send: Send) -> Send:
    async def closing(message: Message) -> None:
        await send(_closing(message) if message["type"] == "http.response.start" else message)

    return closing


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else ""


class BodyLimits:
    """ASGI middleware: every request body counted against its route's BodyLimit as it streams, and
    each client's refused bodies against its RefusalBudget."""

    def __init__(self, app: ASGIApp):
        self.app = app
        self.refusals = RefusalBudget()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = limit_for(scope["method"], scope["path"])
        declared = _declared_length(scope)
        if declared is not None and declared > limit.max_bytes:
            await self.refusals.hold(_client(scope), 0)
            await JSONResponse(limit.refusal(declared), status_code=413)(scope, receive, _closing_send(send))
            return
        received = 0
        body = unread = _has_body(scope, declared)  # unread: until the body's last message has been read

        async def counted() -> Message:
            nonlocal received, unread
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit.max_bytes:
                    raise BodyTooLarge(limit)
                unread = unread and message.get("more_body", False)
            return message

        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if body and 400 <= message["status"] < 500:
                    await self.refusals.hold(_client(scope), received)
                if unread:
                    message = _closing(message)
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge as exc:  # raised where no exception handler sees it (a middleware)
            if started:
                raise
            await JSONResponse(exc.limit.refusal(None), status_code=413)(scope, receive, watched)


def install(app: FastAPI) -> None:
    @app.exception_handler(BodyTooLarge)
    async def _too_large(_: Request, exc: BodyTooLarge) -> JSONResponse:
        return JSONResponse(exc.limit.refusal(None), status_code=413)

    app.add_middleware(BodyLimits)


async def stream_body(request: Request, write: Callable[[bytes], object], batch: int = MiB) -> None:
    """Hand the body to `write` in pieces of about `batch` bytes, each in a worker thread, so that
    hashing and disk writes never run on the event loop (and a piece is one thread hop, not 16)."""
    pending: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        pending.append(chunk)
        size += len(chunk)
        if size >= batch:
            await run_in_threadpool(write, b"".join(pending))
            pending, size = [], 0
    if size:
        await run_in_threadpool(write, b"".join(pending))



async def run_heavy(fn: Callable[..., T], *args: object) -> T:
    """Run slow work (checking an archive) in a thread, at most HEAVY_WORK at a time."""
    return await to_thread.run_sync(fn, *args, limiter=HEAVY_WORK)
