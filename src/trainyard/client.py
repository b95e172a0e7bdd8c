"""The typed HTTP client the CLI, the runtime and users share.

Two faces over one connection:

- `Client`: what a person or a script does (submit, list, status, cancel, logs).
- `Client.attempt(job_id, attempt)`: what a worker rank does, every call
  carrying `(job, attempt)` as the fencing token. The server answers 409 to an
  attempt that is no longer current, raised here as `StaleAttempt`.

Worker routes, all under `/v1/training-jobs/{job}/attempts/{attempt}`:
`POST /heartbeat` {rank, host, pid, step} -> {stop, reason};
`POST /metrics` {rank, points: [{key, step, timestamp, value}]} -> {accepted};
`POST /checkpoints` {step, bytes, manifest, metrics} -> {committed, uri}: the files are
already in the directory the server names for (job, attempt, step), the manifest last;
`POST /checkpoints/{step}/corrupt` {reason} (restore found it failed verification);
`POST /events` {kind, reason}.
Reads a rank needs are not fenced: `GET /v1/training-jobs/{job}/checkpoints`
lists committed checkpoints newest first, each {step, uri, bytes, manifest,
metrics, state, verified, created_at}.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

DEFAULT_SERVER = "http://127.0.0.1:8765"


class TrainyardError(Exception):
    """An error the server answered with; `status` is the HTTP code, `detail` its body."""

    def __init__(self, status: int, detail: Any):
        self.status = status
        self.detail = detail
        super().__init__(describe(detail))


class StaleAttempt(TrainyardError):
    """This attempt was fenced: a newer one owns the job. Stop writing."""


class Unauthorized(TrainyardError):
    """401: the server at `server` knows no live token in this request; `token_sent` says whether
    there was one (a revoked or expired token) or none (no TRAINYARD_TOKEN, no `yard login`)."""

    def __init__(self, status: int, detail: Any, server: str, token_sent: bool):
        super().__init__(status, detail)
        self.server = server
        self.token_sent = token_sent


class ServerUnavailable(Exception):
    """No server answered at the address; start one with `yard server`."""


def describe(detail: Any) -> str:
    """A server error body as one line a person can act on."""
    if isinstance(detail, dict):
        if "errors" in detail:
            return "; ".join(f"{e['field']}: {e['message']}" for e in detail["errors"])
        if "detail" in detail:
            return describe(detail["detail"])
    if isinstance(detail, list):
        return "; ".join(describe(d) for d in detail)
    return str(detail)


def server_url(url: str | None = None) -> str:
    return (url or os.environ.get("TRAINYARD_SERVER") or DEFAULT_SERVER).rstrip("/")


TOKEN_ENV = "TRAINYARD_TOKEN"
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]")


def credentials_file() -> Path:
    """Where `yard login` keeps a token per server: $XDG_CONFIG_HOME/trainyard/credentials.json."""
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "trainyard" / "credentials.json"


def stored_tokens() -> dict[str, str]:
    try:
        data = json.loads(credentials_file().read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def save_token(url: str, token: str) -> Path:
    """Keep `token` for `url` (mode 0600), as `yard login` does."""
    path = credentials_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tokens = {**stored_tokens(), server_url(url): token}
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(tokens, f, indent=1)
    os.replace(tmp, path)
    return path


def find_token(url: str) -> str | None:
    """The token to call `url` with: TRAINYARD_TOKEN, then `yard login`'s for that server, then, for a
    server on this machine, the admin token it wrote to $TRAINYARD_HOME/token."""
    if os.environ.get(TOKEN_ENV):
        return os.environ[TOKEN_ENV].strip()
    saved = stored_tokens().get(server_url(url))
    if saved:
        return saved
    if urlsplit(url).hostname in LOCAL_HOSTS:
        home = Path(os.environ.get("TRAINYARD_HOME", Path.home() / ".trainyard")).expanduser()
        try:
            return (home / "token").read_text().strip() or None
        except OSError:
            return None
    return None


class BearerToken(httpx.Auth):
    """`Authorization: Bearer <token>` on every request."""

    def __init__(self, token: str):
        self.token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.token}"
        yield request


class Client:
    def __init__(self, url: str | None = None, timeout: float = 30.0, token: str | None = None):
        """`token`: default as `find_token` says (the environment, `yard login`, the local server's)."""
        self.url = server_url(url)
        token = token or find_token(self.url)
        self.has_token = token is not None
        self._http = httpx.Client(base_url=self.url, timeout=timeout,
                                  auth=BearerToken(token) if token else None)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            resp = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServerUnavailable(
                f"no trainyard server at {self.url} ({type(exc).__name__}); "
                "start one with `yard server` or set TRAINYARD_SERVER"
            ) from None
        if resp.status_code >= 400:
            raise self._error(resp)
        if resp.status_code == 204:  # no content, whatever type FastAPI declares for it
            return None
        if resp.headers.get("content-type", "").startswith("application/json"):
            return resp.json()
        return resp.text

    # -- jobs ---------------------------------------------------------------

    def upload_code(self, archive: bytes) -> dict[str, Any]:
        """Store a code archive (tar.gz); returns {digest}. Content-addressed: idempotent."""
        return self.request(
            "POST", "/v1/code-archives", content=archive, headers={"content-type": "application/gzip"}
        )

    def submit(self, spec: dict[str, Any], code: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.request("POST", "/v1/training-jobs", json={"spec": spec, "code_snapshot": code})

    def jobs(self, state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if state:
            params["state"] = state
        return self.request("GET", "/v1/training-jobs", params=params)["items"]

    def job(self, job_id: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/training-jobs/{job_id}")

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self.request("POST", f"/v1/training-jobs/{job_id}/cancel")

    def events(self, job_id: str) -> list[dict[str, Any]]:
        return self.request("GET", f"/v1/training-jobs/{job_id}/events")["items"]

    def checkpoints(self, job_id: str) -> list[dict[str, Any]]:
        return self.request("GET", f"/v1/training-jobs/{job_id}/checkpoints")["items"]

    def metrics(self, job_id: str, key: str) -> list[dict[str, Any]]:
        return self.request("GET", f"/v1/training-jobs/{job_id}/metrics/{key}")["points"]

    def logs(
        self, job_id: str, rank: int = 0, attempt: int | None = None, offset: int = 0
    ) -> dict[str, Any]:
        """A chunk of one rank's log: {text, offset (next), attempt, done}."""
        params: dict[str, Any] = {"rank": rank, "offset": offset}
        if attempt is not None:
            params["attempt"] = attempt
        return self.request("GET", f"/v1/training-jobs/{job_id}/logs", params=params)

    def follow_logs(self, job_id: str, rank: int = 0, poll_s: float = 0.5) -> Iterator[str]:
        """Yield log text as it is written, across attempts, until the job ends."""
        import time

        attempt: int | None = None
        offset = 0
        while True:
            chunk = self.logs(job_id, rank=rank, attempt=attempt, offset=offset)
            if chunk["text"]:
                yield chunk["text"]
            if attempt is not None and chunk["attempt"] != attempt:
                offset = 0
            attempt, offset = chunk["attempt"], chunk["offset"]
            if chunk["done"] and not chunk["text"]:
                current = self.job(job_id)["attempt"]
                if current == attempt:
                    return
                attempt, offset = current, 0
                continue
            if not chunk["text"]:
                time.sleep(poll_s)

    # -- sweeps ---------------------------------------------------------------

    def submit_sweep(self, spec: dict[str, Any], code: dict[str, Any] | None = None) -> dict[str, Any]:
        """Start a sweep; `spec["job"]` is the trial template as a mapping."""
        return self.request("POST", "/v1/sweeps", json={"spec": spec, "code_snapshot": code})

    def sweeps(self, limit: int = 100) -> list[dict[str, Any]]:
        return self.request("GET", "/v1/sweeps", params={"limit": limit})["items"]

    def sweep(self, sweep_id: str) -> dict[str, Any]:
        """A sweep's state, trial counts and best trial so far."""
        return self.request("GET", f"/v1/sweeps/{sweep_id}")

    def sweep_trials(self, sweep_id: str) -> list[dict[str, Any]]:
        return self.request("GET", f"/v1/sweeps/{sweep_id}/trials")["items"]

    def sweep_events(self, sweep_id: str) -> list[dict[str, Any]]:
        return self.request("GET", f"/v1/sweeps/{sweep_id}/events")["items"]

    def cancel_sweep(self, sweep_id: str) -> dict[str, Any]:
        return self.request("POST", f"/v1/sweeps/{sweep_id}/cancel")

    # -- runs (tracking) ------------------------------------------------------
    # Every job is a run (same id); create_run() makes one for any process.

    def _fetch(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Like request(), but the response itself: for binary bodies and large JSON."""
        try:
            resp = self._http.request(method, path, **kwargs)
        except httpx.TransportError:
            return self.request(method, path, **kwargs)  # raises ServerUnavailable the usual way
        if resp.status_code >= 400:
            raise self._error(resp)
        return resp

    def _error(self, resp: httpx.Response) -> TrainyardError:
        try:
            detail = resp.json()
        except ValueError:
            detail = resp.text
        if resp.status_code == 401:
            return Unauthorized(401, detail, self.url, self.has_token)
        return (StaleAttempt if resp.status_code == 409 else TrainyardError)(resp.status_code, detail)

    def create_run(
        self, name: str = "run", project: str = "default", experiment: str | None = None,
        params: dict[str, Any] | None = None, tags: dict[str, str] | None = None,
        team: str | None = None) -> dict[str, Any]:
        """A client run of `team` (default: your only team, else `default`), in `project`."""
        body = {"name": name, "team": team, "project": project, "experiment": experiment,
                "params": params or {}, "tags": tags or {}}
        return self.request("POST", "/v1/runs", json=body)

    def run(self, run_id: str) -> dict[str, Any]:
        """{id, name, project, experiment, source, state, params, tags, metrics (latest), ...}."""
        return self.request("GET", f"/v1/runs/{run_id}")

    def search_runs(
        self, filter: str | None = None, project: str | None = None, experiment: str | None = None,
        order_by: list[str] | None = None, limit: int = 100, page_token: str | None = None,
        team: str | None = None) -> dict[str, Any]:
        """One page of the runs you may read: {items, next_page_token}. `filter` like
        "val_acc > 0.95 and params.lr < 0.01"; `team` narrows them to one team's."""
        params: dict[str, Any] = {"limit": limit, "order_by": order_by or []}
        for name, value in (("filter", filter), ("team", team), ("project", project), ("experiment", experiment),
                            ("page_token", page_token)):
            if value:
                params[name] = value
        return self.request("GET", "/v1/runs", params=params)

    def iter_runs(self, **query: Any) -> Iterator[dict[str, Any]]:
        """Every run that search_runs(**query) matches, page after page."""
        token = None
        while True:
            page = self.search_runs(**query, page_token=token)
            yield from page["items"]
            token = page["next_page_token"]
            if not token:
                return

    def end_run(self, run_id: str, state: str = "SUCCEEDED", reason: str | None = None) -> dict[str, Any]:
        return self.request("PATCH", f"/v1/runs/{run_id}", json={"state": state, "reason": reason})

    def log_params(self, run_id: str, params: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", f"/v1/runs/{run_id}/params", json={"params": params})

    def set_tags(self, run_id: str, tags: dict[str, str]) -> dict[str, Any]:
        return self.request("POST", f"/v1/runs/{run_id}/tags", json={"tags": tags})

    def log_metrics(self, run_id: str, points: list[dict[str, Any]], encoding: str = "msgpack") -> int:
        """Append points [{key, step, timestamp, value}] (value None is NaN). By default they travel
        as MessagePack columns, several times cheaper at both ends than JSON objects."""
        path = f"/v1/runs/{run_id}/metrics"
        if encoding == "json":
            return self.request("POST", path, json={"points": points})["accepted"]
        import msgpack

        columns = {name: [p[name] for p in points] for name in ("key", "step", "timestamp", "value")}
        body = msgpack.packb({"columns": columns}, use_bin_type=True)
        headers = {"content-type": "application/msgpack"}
        return self.request("POST", path, content=body, headers=headers)["accepted"]

    def metric_columns(self, run_id: str, key: str, max_points: int | None = None) -> dict[str, Any]:
        """A metric's history as parallel arrays {step, timestamp, value, total, sampled}; with
        `max_points`, down-sampled to buckets that also carry min, max and count."""
        import orjson

        params: dict[str, Any] = {"format": "columns"}
        if max_points:
            params["max_points"] = max_points
        return orjson.loads(self._fetch("GET", f"/v1/runs/{run_id}/metrics/{key}", params=params).content)

    def metric_history(self, run_id: str, key: str, max_points: int | None = None) -> list[dict[str, Any]]:
        """A metric's history as points [{step, timestamp, value}] in step order (NaN is None)."""
        cols = self.metric_columns(run_id, key, max_points)
        names = [n for n in ("step", "timestamp", "value", "min", "max", "count") if n in cols]
        return [dict(zip(names, row, strict=True)) for row in zip(*(cols[n] for n in names), strict=True)]

    def compare_runs(self, run_ids: list[str]) -> dict[str, Any]:
        """{runs, params: {key: [value per run]}, metrics: {key: [latest value per run]}}."""
        return self.request("GET", "/v1/runs/compare", params={"ids": run_ids})

    def experiments(self, project: str | None = None) -> list[dict[str, Any]]:
        return self.request("GET", "/v1/experiments", params={"project": project} if project else {})["items"]

    def upload_artifact(
        self, run_id: str, path: str, source: str | os.PathLike[str] | bytes,
        progress: Callable[[int], None] | None = None) -> dict[str, Any]:
        """Store a file (streamed from disk, never whole in memory) or bytes as artifact `path`
        of the run; `progress(n)` is called with each chunk's size as it is sent."""
        if isinstance(source, bytes):
            content: Any = source
        else:
            def chunks(file: str | os.PathLike[str] = source) -> Iterator[bytes]:
                with open(file, "rb") as fh:
                    while chunk := fh.read(1 << 20):
                        if progress is not None:
                            progress(len(chunk))
                        yield chunk
            content = chunks()
        headers = {"content-type": "application/octet-stream"}
        return self.request("PUT", f"/v1/runs/{run_id}/artifacts/{path}", content=content, headers=headers)

    def artifacts(self, run_id: str, prefix: str = "") -> list[dict[str, Any]]:
        return self.request("GET", f"/v1/runs/{run_id}/artifacts", params={"prefix": prefix})["items"]

    def download_artifact(
        self, run_id: str, path: str, dest: str | os.PathLike[str],
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Stream artifact `path` into the file `dest`; returns the bytes written."""
        written = 0
        with self._http.stream("GET", f"/v1/runs/{run_id}/artifacts/{path}") as resp:
            if resp.status_code >= 400:
                resp.read()
                raise self._error(resp)
            with open(dest, "wb") as fh:
                for chunk in resp.iter_bytes():
                    fh.write(chunk)
                    written += len(chunk)
                    if progress is not None:
                        progress(len(chunk))
        return written

    # -- datasets, lineage and the model registry -----------------------------
    def missing_dataset_blobs(self, sha256s: list[str]) -> list[str]:
        return self.request("POST", "/v1/dataset-blobs/missing", json={"sha256": sha256s})["missing"]

    def upload_dataset_blob(self, sha256: str, path: str | os.PathLike[str],
                            progress: Callable[[int], None] | None = None) -> dict[str, Any]:
        """Stream one file's content; the server stores it under `sha256` only if the bytes hash to it."""
        def chunks() -> Iterator[bytes]:
            with open(path, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    if progress is not None:
                        progress(len(chunk))
                    yield chunk
        return self.request("PUT", f"/v1/dataset-blobs/{sha256}", content=chunks(),
                            headers={"content-type": "application/octet-stream"})

    def create_dataset_version(self, name: str, files: list[dict[str, Any]], project: str = "default",
                               source: str = "", description: str = "", team: str | None = None) -> dict[str, Any]:
        """NAME@vN from a manifest [{path, bytes, sha256}] whose contents are uploaded; {ref, created, ...}.
        `team` owns a new dataset (default: your only team, else `default`)."""
        body = {"name": name, "team": team, "project": project, "files": files, "source": source,
                "description": description}
        return self.request("POST", "/v1/datasets", json=body)

    def create_dataset(self, name: str, path: str | os.PathLike[str], project: str = "default",
                       description: str = "", progress: Callable[[int], None] | None = None,
                       team: str | None = None) -> dict[str, Any]:
        """Snapshot a directory: hash its files, upload the contents the server lacks, make NAME@vN."""
        from pathlib import Path

        from trainyard.data import manifest

        root = Path(path)
        files = manifest.build(root)
        missing = set(self.missing_dataset_blobs([f["sha256"] for f in files]))
        for f in files:
            if f["sha256"] in missing:
                self.upload_dataset_blob(f["sha256"], root / f["path"], progress)
                missing.discard(f["sha256"])
        return self.create_dataset_version(name, files, project, str(root.resolve()), description, team)

    def datasets(self, project: str | None = None) -> list[dict[str, Any]]:
        return self.request("GET", "/v1/datasets", params={"project": project} if project else {})["items"]

    def dataset(self, name: str) -> dict[str, Any]:
        """A dataset with its versions (`items`), newest first."""
        return self.request("GET", f"/v1/datasets/{name}")

    def dataset_version(self, name: str, version: int | str) -> dict[str, Any]:
        """One snapshot with its manifest (`files`)."""
        return self.request("GET", f"/v1/datasets/{name}/versions/{version}")

    def declare_model(self, spec: dict[str, Any], code: dict[str, Any] | None = None) -> dict[str, Any]:
        """Create a model or change its description and evaluation (a model.yaml as a mapping)."""
        return self.request("POST", "/v1/models", json={"spec": spec, "code_snapshot": code})

    def models(self, project: str | None = None) -> list[dict[str, Any]]:
        return self.request("GET", "/v1/models", params={"project": project} if project else {})["items"]

    def model(self, name: str) -> dict[str, Any]:
        """A model with its aliases and versions (each with its evaluation's state)."""
        return self.request("GET", f"/v1/models/{name}")

    def register_model_version(self, name: str, run_id: str, checkpoint: str = "best", description: str = "",
                               tags: dict[str, str] | None = None) -> dict[str, Any]:
        body = {"run_id": run_id, "checkpoint": checkpoint, "description": description, "tags": tags or {}}
        return self.request("POST", f"/v1/models/{name}/versions", json=body)

    def model_version(self, name: str, which: int | str) -> dict[str, Any]:
        """A version by number (3, "v3") or alias ("production")."""
        return self.request("GET", f"/v1/models/{name}/versions/{which}")

    def update_model_version(self, name: str, which: int | str, description: str | None = None,
                             tags: dict[str, str] | None = None,
                             remove_tags: list[str] | None = None) -> dict[str, Any]:
        body = {"description": description, "tags": tags or {}, "remove_tags": remove_tags or []}
        return self.request("PATCH", f"/v1/models/{name}/versions/{which}", json=body)

    def evaluate_model_version(self, name: str, which: int | str) -> dict[str, Any]:
        return self.request("POST", f"/v1/models/{name}/versions/{which}/evaluate")

    def move_alias(self, name: str, alias: str, version: int, reason: str) -> dict[str, Any]:
        """Point `alias` at a version; a gated alias refuses (422) a version that has not passed."""
        return self.request("PUT", f"/v1/models/{name}/aliases/{alias}",
                            json={"version": version, "reason": reason})

    def rollback_alias(self, name: str, alias: str = "production", reason: str = "rollback") -> dict[str, Any]:
        return self.request("POST", f"/v1/models/{name}/aliases/{alias}/rollback", json={"reason": reason})

    def model_events(self, name: str, alias: str | None = None) -> list[dict[str, Any]]:
        return self.request("GET", f"/v1/models/{name}/events",
                            params={"alias": alias} if alias else {})["items"]

    def run_lineage(self, run_id: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/lineage/runs/{run_id}")

    def version_lineage(self, name: str, which: int | str) -> dict[str, Any]:
        return self.request("GET", f"/v1/lineage/models/{name}/versions/{which}")

    def rerun(self, job_id: str) -> dict[str, Any]:
        """Submit the same job again from its recorded inputs; the new job's detail."""
        return self.request("POST", f"/v1/training-jobs/{job_id}/rerun")

    # -- identity: users, team members, tokens ---------------------------------

    def whoami(self) -> dict[str, Any]:
        """Who this client's token speaks for: {name, kind, platform_admin, roles, token_id}."""
        return self.request("GET", "/v1/whoami")

    def create_user(self, name: str, email: str | None = None) -> dict[str, Any]:
        return self.request("POST", "/v1/users", json={"name": name, "email": email})

    def users(self) -> list[dict[str, Any]]:
        return self.request("GET", "/v1/users")["items"]

    def members(self, team: str) -> list[dict[str, Any]]:
        return self.request("GET", f"/v1/teams/{team}/members")["items"]

    def set_member(self, team: str, user: str, role: str) -> dict[str, Any]:
        return self.request("PUT", f"/v1/teams/{team}/members/{user}", json={"role": role})

    def remove_member(self, team: str, user: str) -> None:
        self.request("DELETE", f"/v1/teams/{team}/members/{user}")

    def create_token(self, name: str = "default", expires: str | None = None, user: str | None = None,
                     scopes: dict[str, str] | None = None) -> dict[str, Any]:
        """A new token of `user` (default: this client's), its secret in `token`: shown only now."""
        body: dict[str, Any] = {"name": name, "user": user, "scopes": scopes}
        if expires is not None:
            body["expires"] = expires
        return self.request("POST", "/v1/tokens", json=body)

    def create_service_token(self, team: str, service: str, role: str, name: str = "default",
                             expires: str | None = None) -> dict[str, Any]:
        """A token of service account `service` (made if new) with `role` in `team`, scoped to it."""
        body: dict[str, Any] = {"name": name, "role": role}
        if expires is not None:
            body["expires"] = expires
        return self.request("POST", f"/v1/teams/{team}/service-accounts/{service}/tokens", json=body)

    def tokens(self, user: str | None = None) -> list[dict[str, Any]]:
        return self.request("GET", "/v1/tokens", params={"user": user} if user else None)["items"]

    def revoke_token(self, token_id: str) -> dict[str, Any]:
        return self.request("POST", f"/v1/tokens/{token_id}/revoke")

    # -- secrets ----------------------------------------------------------------

    def set_secret(self, team: str, name: str, value: str) -> dict[str, Any]:
        """Set or replace a secret of `team` (its admin role); the answer never carries the value."""
        return self.request("PUT", f"/v1/teams/{team}/secrets/{name}", json={"value": value})

    def secrets(self, team: str) -> list[dict[str, Any]]:
        """The team's secrets: [{team, name, created_at, updated_at, updated_by}], never their values."""
        return self.request("GET", f"/v1/teams/{team}/secrets")["items"]

    def delete_secret(self, team: str, name: str) -> None:
        self.request("DELETE", f"/v1/teams/{team}/secrets/{name}")

    # -- audit ------------------------------------------------------------------

    def audit(self, since: str | None = None, actor: str | None = None, action: str | None = None,
              limit: int = 100, before: int | None = None) -> dict[str, Any]:
        """Audit rows, newest first: {items, next}; pass `next` as `before` for the older page.
        `since`: a time ago (1d, 12h, 30m) or an ISO 8601 time."""
        params = {"since": since, "actor": actor, "action": action, "limit": limit, "before": before}
        return self.request("GET", "/v1/audit", params={k: v for k, v in params.items() if v is not None})

    # -- worker side ----------------------------------------------------------

    def attempt(self, job_id: str, attempt: int) -> AttemptClient:
        return AttemptClient(self, job_id, attempt)


class AttemptClient:
    """Calls a rank makes, fenced by (job, attempt)."""

    def __init__(self, client: Client, job_id: str, attempt: int):
        self.client = client
        self.prefix = f"/v1/training-jobs/{job_id}/attempts/{attempt}"

    def heartbeat(self, rank: int, host: str, pid: int, step: int | None) -> dict[str, Any]:
        body = {"rank": rank, "host": host, "pid": pid, "step": step}
        return self.client.request("POST", f"{self.prefix}/heartbeat", json=body)

    def metrics(self, rank: int, points: list[dict[str, Any]]) -> dict[str, Any]:
        body = {"rank": rank, "points": points}
        return self.client.request("POST", f"{self.prefix}/metrics", json=body)

    def metrics_encoded(self, body: bytes, content_type: str = "application/msgpack") -> dict[str, Any]:
        """A batch already encoded for the route (e.g. MessagePack columns: the fast path)."""
        return self.client.request("POST", f"{self.prefix}/metrics", content=body,
                                   headers={"content-type": content_type})

    def commit_checkpoint(
        self, step: int, nbytes: int, manifest: dict[str, Any], metrics: dict[str, float]
    ) -> dict[str, Any]:
        """Commit the checkpoint written where the server keeps it (the job's checkpoint root,
        a{attempt:03d}-s{step:09d}); the answer names that location as `uri`."""
        body = {"step": step, "bytes": nbytes, "manifest": manifest, "metrics": metrics}
        return self.client.request("POST", f"{self.prefix}/checkpoints", json=body)

    def report_corrupt(self, step: int, reason: str) -> dict[str, Any]:
        path = f"{self.prefix}/checkpoints/{step}/corrupt"
        return self.client.request("POST", path, json={"reason": reason})

    def event(self, kind: str, reason: str) -> dict[str, Any]:
        return self.client.request("POST", f"{self.prefix}/events", json={"kind": kind, "reason": reason})
