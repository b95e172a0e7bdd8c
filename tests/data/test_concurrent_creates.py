"""Creates of one dataset name at the same moment each get a correct answer, never a 5xx."""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx

CREATES = 12


def stored_file(http: httpx.Client, text: str) -> dict:
    data = text.encode()
    sha = hashlib.sha256(data).hexdigest()
    assert http.put(f"/v1/dataset-blobs/{sha}", content=data).status_code == 200
    return {"path": "data.txt", "bytes": len(data), "sha256": sha}


def create_all_at_once(url: str, auth: dict[str, str], name: str,
                       manifests: list[list[dict]]) -> list[httpx.Response]:
    start = threading.Barrier(len(manifests))

    def create(files: list[dict]) -> httpx.Response:
        with httpx.Client(timeout=60, headers=auth) as http:
            start.wait()
            return http.post(f"{url}/v1/datasets", json={"name": name, "files": files})

    with ThreadPoolExecutor(len(manifests)) as pool:
        return list(pool.map(create, manifests))


def test_twelve_concurrent_creates_of_one_name_give_one_version_each_and_no_5xx(data_server):
    url, http = data_server.url, data_server.http
    same = [stored_file(http, "one manifest")]
    first = create_all_at_once(url, data_server.auth, "raced", [same] * CREATES)
    assert [r.status_code for r in first] == [201] * CREATES, [r.text for r in first]
    bodies = [r.json() for r in first]
    assert sorted(b["created"] for b in bodies) == [False] * (CREATES - 1) + [True]
    assert {b["ref"] for b in bodies} == {"raced@v1"}

    distinct = [[stored_file(http, f"manifest {i}")] for i in range(CREATES)]
    second = create_all_at_once(url, data_server.auth, "raced", distinct)
    assert [r.status_code for r in second] == [201] * CREATES, [r.text for r in second]
    bodies = [r.json() for r in second]
    assert all(b["created"] for b in bodies)
    assert sorted(b["version"] for b in bodies) == list(range(2, CREATES + 2))
    for files, body in zip(distinct, bodies, strict=True):
        version = http.get(f"/v1/datasets/raced/versions/{body['version']}").json()
        assert version["files"] == files and version["digest"] == body["digest"]
    assert http.get("/v1/datasets/raced").json()["versions"] == CREATES + 1
