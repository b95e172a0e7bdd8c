"""The audit trail: every state-changing call is recorded, whichever route it reaches.

An ASGI middleware around the whole app, so a route added later is audited with nothing to
remember: every request but reads (GET, HEAD, OPTIONS) and ingestion (api/ingestion.py) gets one
row (auth/audit.py), accepted or refused, anonymous 401s included. The row is made of what the
request's routing and authentication left in its scope (the route, its path parameters, the
principal `authenticate` set) and of the answer (status, a refusal's detail, a created object's
id); a request body, a header or a token is never read for it.

The row is written, in its own short transaction, after the answer is produced and before it is
sent: a caller who sees an answer knows the call is on record. If the server dies after a
change commits and before its row is written, the change stays, unrecorded, and its caller gets
no answer (a dropped connection, never a success). A failed audit write is logged and the
answer still goes out: the change has happened, and a 500 would invite a retry that repeats it.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from anyio import to_thread
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from trainyard.api.ingestion import is_audited_write
from trainyard.auth import audit
from trainyard.principal import Principal
from trainyard.store import Store

log = logging.getLogger("trainyard.audit")
PEEK_BYTES = 64 * 1024  # answers up to this size are read for a refusal's reason or a created id
CREATED_FIELDS = ("id", "name", "version")
MAX_PARAMS = 8


def _value(v: Any) -> str | int:
    return v if isinstance(v, int) and not isinstance(v, bool) else str(v)[: audit.VALUE_CHARS]


def _answer(held: list[Message], complete: bool) -> Any:
    """The answer's JSON document, if it came whole and small; else None."""
    if not complete or not held:
        return None
    headers = dict(held[0].get("headers") or [])
    if not headers.get(b"content-type", b"").startswith(b"application/json"):
        return None
    try:
        return json.loads(b"".join(m.get("body", b"") for m in held[1:]))
    except ValueError:
        return None


def _reason(answer: Any) -> str | None:
    """A refusal's reason as one line: its `detail`, or its refused fields and what is wrong."""
    if not isinstance(answer, dict):
        return None
    if isinstance(answer.get("errors"), list):
        return "; ".join(f"{e.get('field')}: {e.get('message')}" for e in answer["errors"] if isinstance(e, dict))
    detail = answer.get("detail")
    if detail is None or isinstance(detail, str):
        return detail
    return json.dumps(detail)[: audit.REASON_CHARS]


def _team(template: str, obj: dict[str, Any], answer: Any) -> str | None:
    """The team the object belongs to, where the call says so: its path, or a successful answer."""
    if isinstance(obj.get("team"), str):
        return obj["team"]
    if template.startswith("/v1/teams/{name}") and isinstance(obj.get("name"), str):
        return obj["name"]
    team = answer.get("team") if isinstance(answer, dict) else None
    return team if isinstance(team, str) else None


def entry(scope: Scope, status: int, answer: Any) -> audit.Entry | None:
    """The audit row of one answered call; None for a request that named no route (404 from the router)."""
    route = scope.get("route")
    method = scope["method"]
    if route is None and (status < 400 or status == 404):
        return None  # nothing by that name exists, or a redirect: nothing could change
    if route is None:  # refused before routing (a body over its limit, a foreign Host)
        action, template, obj = "refused_before_routing", scope["path"], {}
    else:
        methods = getattr(route, "methods", None) or ()
        action = getattr(route, "name", "") if method in methods else "method_not_allowed"
        template = getattr(route, "path_format", scope["path"])
        params = list((scope.get("path_params") or {}).items())[:MAX_PARAMS]
        obj = {k: _value(v) for k, v in params}
    ok = 200 <= status < 300
    if status == 201 and isinstance(answer, dict):
        for key in CREATED_FIELDS:
            if key not in obj and isinstance(answer.get(key), str | int):
                obj[key] = _value(answer[key])
    who = (scope.get("state") or {}).get("principal")
    who = who if isinstance(who, Principal) else None
    client = scope.get("client")
    return audit.Entry(actor=who.name if who else audit.ANONYMOUS, token_id=who.token_id if who else None,
                       action=action, method=method, route=template, object=obj,
                       team=_team(template, obj, answer if ok else None), outcome=status,
                       reason=None if ok else _reason(answer), source=client[0] if client else None)


class AuditTrail:
    """ASGI middleware: each audited call's answer is held until its row is written."""

    def __init__(self, app: ASGIApp, store: Store):
        self.app = app
        self.store = store

    def _insert(self, row: audit.Entry) -> None:
        with self.store.session() as s:
            audit.record(s, row)

    async def _write(self, scope: Scope, status: int, answer: Any) -> None:
        row = entry(scope, status, answer)
        if row is None:
            return
        try:
            await to_thread.run_sync(self._insert, row)
        except Exception:  # the change is made; answering 500 would invite a retry that repeats it
            log.exception("audit row not written: %s %s %s by %s -> %s", row.method, row.route, row.object,
                          row.actor, row.outcome)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_audited_write(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        held: list[Message] = []
        size, status, written = 0, 500, False

        async def hold(message: Message) -> None:
            nonlocal size, status, written
            if written:
                await send(message)
                return
            if message["type"] == "http.response.start":
                status = message["status"]
            size += len(message.get("body", b""))
            held.append(message)
            last = message["type"] == "http.response.body" and not message.get("more_body", False)
            if last or size > PEEK_BYTES:
                await self._write(scope, status, _answer(held, last and size <= PEEK_BYTES))
                written = True
                for m in held:
                    await send(m)
                held.clear()

        try:
            await self.app(scope, receive, hold)
        except Exception:
            if not written:  # the error middleware outside answers 500
                await self._write(scope, 500, {"detail": "the server failed (see its log)"})
            raise


def install(app: FastAPI) -> None:
    """Outermost of our middlewares: it sees the refusals of the others (body limits, Host) too."""
    app.add_middleware(AuditTrail, store=app.state.platform.store)
