"""A tiny real HTTP server standing in for the api: it records what ranks send.

Speaks the worker routes of `trainyard.client` and can be told to go down,
come back on the same port, fence the attempt (409) or ask ranks to stop.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

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
        self.stale = False
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
                items = sorted(self.commits, key=lambda c: c["step"], reverse=True)
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
                self.points.extend({**p, "rank": body["rank"]} for p in body["points"])
                return 200, {"accepted": len(body["points"])}
            if route == "checkpoints":
                self.commits.append({**body, "attempt": attempt})
                return 200, {"committed": True}
            if (c := re.match(r"^checkpoints/(\d+)/corrupt$", route)) is not None:
                self.corrupt.append({"step": int(c.group(1)), **body})
                return 200, {}
            if route == "events":
                self.events.append(body)
                return 200, {}
            return 404, {"detail": f"no route {route}"}


class _Handler(BaseHTTPRequestHandler):
    server_state: RecordingServer

    def _reply(self, method: str) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
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
