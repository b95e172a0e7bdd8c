"""A tiny real HTTP server standing in for the api: it records what ranks send.

Speaks the worker routes of `trainyard.client` and can be told to go down,
come back on the same port, fence the attempt (409), refuse commits with any status
or ask ranks to stop.
Metric batches are read as the real route reads them: JSON or MessagePack
(by content-type), as `points` objects or as parallel `columns`; the encodings
and sizes of metric requests are kept in `metric_posts`.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import msgpack

MSGPACK_TYPES = frozenset({"application/msgpack", "application/x-msgpack", "application/vnd.msgpack"})
ATTEMPT_ROUTE = re.compile(r"^/v1/training-jobs/([^/]+)/attempts/(\d+)/(.+)$")
LIST_ROUTE = re.compile(r"^/v1/training-jobs/([^/]+)/checkpoints$")


class RecordingServer:
    def __init__(self) -> None:
        self.port = 0
        self.heartbeats: list[dict[str, Any]] = []
        self.points: list[dict[str, Any]] = []
        self.commits: list[dict[str, Any]] = []
        self.corrupt: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.metric_posts: list[tuple[str, int]] = []  # (content-type, points) per request
        self.stale = False
        self.commit_refusal: tuple[int, Any] | None = None  # (status, body) answered to every commit
        self.listed_extra: list[dict[str, Any]] = []  # listed as committed though never committed here
        self.stop_reason: str | None = None
        self.lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        handler = type("Handler", (_Handler,), {"server_state": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if predicate():
                    return True
            time.sleep(0.02)
        return False

    def handle(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        with self.lock:
            if method == "GET" and (m := LIST_ROUTE.match(path)):
                items = sorted([*self.commits, *self.listed_extra], key=lambda c: c["step"], reverse=True)
                return 200, {"items": [{**c, "state": "committed", "verified": False} for c in items]}
            m = ATTEMPT_ROUTE.match(path)
            if method != "POST" or m is None:
                return 404, {"detail": f"no route {method} {path}"}
            if self.stale:
                return 409, {"detail": f"attempt {m.group(2)} is no longer current"}
            attempt, route = int(m.group(2)), m.group(3)
            if route == "heartbeat":
                self.heartbeats.append({**body, "attempt": attempt})
                return 200, {"stop": self.stop_reason is not None, "reason": self.stop_reason}
            if route == "metrics":
                points = _points(body)
                self.points.extend({**p, "rank": body["rank"]} for p in points)
                return 200, {"accepted": len(points)}
            if route == "checkpoints":
                if self.commit_refusal is not None:
                    return self.commit_refusal
                self.commits.append({**body, "attempt": attempt})
                return 200, {"committed": True}
            if (c := re.match(r"^checkpoints/(\d+)/corrupt$", route)) is not None:
                self.corrupt.append({"step": int(c.group(1)), **body})
                return 200, {}
            if route == "events":
                self.events.append(body)
                return 200, {}
            return 404, {"detail": f"no route {route}"}


def _points(body: dict[str, Any]) -> list[dict[str, Any]]:
    if "columns" not in body:
        return list(body["points"])
    cols = body["columns"]
    names = ("key", "step", "timestamp", "value")
    return [dict(zip(names, row, strict=True)) for row in zip(*(cols[n] for n in names), strict=True)]


def _decode(raw: bytes, content_type: str) -> Any:
    media = content_type.split(";", 1)[0].strip().lower()
    if media in MSGPACK_TYPES:
        return msgpack.unpackb(raw, raw=False)
    return json.loads(raw)


class _Handler(BaseHTTPRequestHandler):
    server_state: RecordingServer

    def _reply(self, method: str) -> None:
        length = int(self.headers.get("content-length") or 0)
        content_type = self.headers.get("content-type") or "application/json"
        body = _decode(self.rfile.read(length), content_type) if length else None
        if length and self.path.endswith("/metrics"):
            with self.server_state.lock:
                self.server_state.metric_posts.append((content_type, len(_points(body))))
        status, reply = self.server_state.handle(method, self.path, body)
        data = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._reply("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._reply("POST")

    def log_message(self, format: str, *args: Any) -> None:
        pass
