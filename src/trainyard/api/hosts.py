"""Only the host names this server is configured for: a guard against DNS rebinding.

A web page a user opens can make the browser send requests to 127.0.0.1 under the page's own
host name (DNS rebinding); the Host header then names that page's domain. Every request whose
Host is not one of the server's names is refused before it reaches a route.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


def host_name(header: str) -> str:
    """`example.org:8765` -> `example.org`; `[::1]:8765` -> `::1`."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class AllowedHosts:
    """ASGI middleware: 421 with a JSON body for a Host that is not allowed; otherwise pass through."""

    def __init__(self, app: ASGIApp, hosts: Iterable[str]) -> None:
        self.app = app
        self.hosts = frozenset(host_name(h) for h in hosts)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket") or "*" in self.hosts:
            await self.app(scope, receive, send)
            return
        raw = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
        if host_name(raw) in self.hosts:
            await self.app(scope, receive, send)
            return
        body = json.dumps({"errors": [{"field": "Host", "message": (
            f"this server does not answer to host {raw!r}; use one of {', '.join(sorted(self.hosts))}, "
            "or start it with TRAINYARD_ALLOWED_HOSTS naming this host")}]}).encode()
        await send({"type": "http.response.start", "status": 421,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
