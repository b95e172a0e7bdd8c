"""Manifests that could never be unpacked are refused when the snapshot is made, naming the entry."""

from __future__ import annotations

import pytest

from trainyard.data.manifest import ManifestError, check

SHA = "0" * 64


def entry(path: str) -> dict:
    return {"path": path, "bytes": 1, "sha256": SHA}


@pytest.mark.parametrize(("paths", "field", "words"), [
    (["a", "a/b"], "files.1.path", "'a' is also listed as a file"),
    (["x/y/z.txt", "x/y"], "files.0.path", "'x/y' is also listed as a file"),
    (["ok.txt", "new\nline.txt"], "files.1.path", "is not a relative path"),
    (["tab\there"], "files.0.path", "is not a relative path"),
    (["d/" + "n" * 256], "files.0.path", "is not a relative path"),
])
def test_a_manifest_no_copy_could_hold_is_refused(paths, field, words):
    with pytest.raises(ManifestError) as err:
        check([entry(p) for p in paths])
    assert err.value.field == field
    assert words in str(err.value)


def test_nested_files_under_distinct_directories_are_fine():
    assert [f["path"] for f in check([entry("a/b"), entry("a/c/d"), entry("ab")])] == ["a/b", "a/c/d", "ab"]


def test_server_refuses_a_colliding_manifest_and_stores_no_dataset(data_server):
    resp = data_server.http.post("/v1/datasets",
                      json={"name": "collide", "files": [entry("a"), entry("a/b")]})
    assert resp.status_code == 422, resp.text
    assert resp.json()["errors"][0]["field"] == "files.1.path"
    assert data_server.http.get("/v1/datasets/collide").status_code == 404
