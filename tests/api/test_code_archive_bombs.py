"""Code archives are checked as a stream in a worker process, with caps on what they inflate to."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.api.abuse import GiB, MiB, Watch, code_archive, gzip_bomb, many_members
from trainyard.storage.code_archive import ArchiveError, ArchiveLimits, unpack_archive

POST = {"headers": {"content-type": "application/gzip"}, "timeout": 120}


def _refused(resp: httpx.Response, cap: str) -> str:
    assert resp.status_code == 422, resp.text[:500]
    [error] = resp.json()["errors"]
    assert error["field"] == "(body)"
    assert cap in error["message"], error["message"]
    return error["message"]


def test_gzip_bomb_is_refused_and_healthz_stays_fast_meanwhile(server):
    bomb = gzip_bomb(8 * GiB)
    with Watch(server.proc.pid, server.url, every_s=0.02) as watch:
        t0 = time.monotonic()
        resp = server.http.post("/v1/code-archives", content=bomb, **POST)
        elapsed = time.monotonic() - t0
        time.sleep(0.2)  # a few probes after the answer, too
    _refused(resp, "1024 MiB")
    assert elapsed < 10, elapsed
    assert not watch.stalls(0.1), f"/healthz held up (start, s): {watch.stalls(0.1)}"
    assert not list((server.home / "blobs").rglob("*.tar.gz"))


def test_archive_inflating_past_the_cap_across_many_members_is_refused(server):
    def members():
        zeros = gzip.compress(bytes(MiB))
        for i in range(1100):  # 1100 files of 1 MiB: each small, together over the cap
            yield _member(f"d/{i}", MiB)
            yield zeros
        yield gzip.compress(bytes(1024))

    resp = server.http.post("/v1/code-archives", content=members(), **POST)
    _refused(resp, "1024 MiB")


def _member(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    return gzip.compress(info.tobuf(tarfile.PAX_FORMAT))


def test_archive_with_too_many_members_is_refused(server):
    resp = server.http.post("/v1/code-archives", content=many_members(20_001), **POST)
    _refused(resp, "20000 files")


def test_a_huge_long_name_header_is_refused_before_it_is_read(server):
    with Watch(server.proc.pid, server.url) as watch:
        resp = server.http.post("/v1/code-archives", content=gzip_bomb(
            600 * MiB, name="././@LongLink", kind=tarfile.GNUTYPE_LONGNAME, fmt=tarfile.GNU_FORMAT), **POST)
    _refused(resp, "header")
    assert watch.rss_growth < 100 * MiB, watch.rss_growth


@pytest.mark.parametrize("member", [
    {"name": "../escape.py", "size": 1},
    {"name": "/etc/cron.d/x", "size": 1},
    {"name": "link", "type": tarfile.SYMTYPE, "linkname": "/etc/passwd"},
    {"name": "dev", "type": tarfile.CHRTYPE},
    {"name": "p" * 1100, "size": 1},
])
def test_members_that_leave_the_code_directory_or_are_devices_are_refused(server, member):
    info = tarfile.TarInfo(member["name"])
    info.size = member.get("size", 0)
    info.type = member.get("type", tarfile.REGTYPE)
    info.linkname = member.get("linkname", "")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.addfile(info, io.BytesIO(b"x" * info.size))
    resp = server.http.post("/v1/code-archives", content=buf.getvalue(), **POST)
    assert resp.status_code == 422, resp.text
    assert resp.json()["errors"][0]["field"] == "(body)"


def test_a_real_code_archive_is_stored_under_its_digest(server):
    archive = code_archive({"train.py": b"print('hi')\n", "pkg/model.py": b"x = 1\n"})
    resp = server.http.post("/v1/code-archives", content=archive, **POST)
    assert resp.status_code == 201, resp.text
    digest = "sha256:" + hashlib.sha256(archive).hexdigest()
    assert resp.json() == {"digest": digest}
    stored = server.home / "blobs" / "code" / f"{digest.removeprefix('sha256:')}.tar.gz"
    assert stored.read_bytes() == archive
    again = server.http.post("/v1/code-archives", content=archive, **POST)
    assert again.json() == {"digest": digest}


def test_not_a_tar_gz_is_refused_with_422(server):
    resp = server.http.post("/v1/code-archives", content=b"hello", **POST)
    assert resp.status_code == 422
    assert "tar.gz" in resp.json()["errors"][0]["message"]


# -- unpacking at launch enforces the same caps ------------------------------------------------


def _bomb_bytes(inflated: int) -> bytes:
    return b"".join(gzip_bomb(inflated))


def test_unpack_refuses_a_bomb_before_inflating_it(tmp_path: Path):
    t0 = time.monotonic()
    with pytest.raises(ArchiveError, match="1024 MiB"):
        unpack_archive(_bomb_bytes(8 * GiB), tmp_path / "code")
    assert time.monotonic() - t0 < 5
    assert sum(f.stat().st_size for f in tmp_path.rglob("*") if f.is_file()) == 0


def test_unpack_stops_at_the_member_cap(tmp_path: Path):
    with pytest.raises(ArchiveError, match="10 files"):
        unpack_archive(many_members(11), tmp_path / "code", ArchiveLimits(max_members=10))


def test_unpack_stops_once_the_inflated_total_passes_its_cap(tmp_path: Path):
    archive = code_archive({f"f{i}": bytes(MiB) for i in range(3)})
    with pytest.raises(ArchiveError, match="2 MiB"):
        unpack_archive(archive, tmp_path / "code", ArchiveLimits(max_inflated_bytes=2 * MiB))


def test_unpack_writes_a_real_archive(tmp_path: Path):
    archive = code_archive({"train.py": b"print('hi')\n", "pkg/model.py": b"x = 1\n"})
    unpack_archive(archive, tmp_path / "code")
    assert (tmp_path / "code" / "train.py").read_bytes() == b"print('hi')\n"
    assert (tmp_path / "code" / "pkg" / "model.py").read_bytes() == b"x = 1\n"


# -- checks run in worker processes, never holding the server's GIL -------------------------------


def _checkers(server) -> list[psutil.Process]:
    """The server's live archive-check workers (spawned by multiprocessing, as its resource tracker is)."""
    found = []
    for child in psutil.Process(server.proc.pid).children():
        try:
            if "--multiprocessing-fork" in child.cmdline() and child.status() != psutil.STATUS_ZOMBIE:
                found.append(child)
        except psutil.Error:  # gone, or a zombie not yet reaped
            continue
    return found


def test_archives_are_checked_in_a_lower_priority_process_not_the_server(server):
    """20,000 tar headers are a quarter of a second of Python: spent by a niced worker process, not by
    the server, whose requests would otherwise wait for the GIL meanwhile."""
    assert server.http.post("/v1/code-archives", content=code_archive({"a.py": b""}), **POST).status_code == 201
    [checker] = _checkers(server)
    assert checker.nice() == 10
    server_cpu, checker_cpu = psutil.Process(server.proc.pid).cpu_times(), checker.cpu_times()
    _refused(server.http.post("/v1/code-archives", content=many_members(50_000), **POST), "20000 files")
    server_spent = sum(psutil.Process(server.proc.pid).cpu_times()[:2]) - sum(server_cpu[:2])
    checker_spent = sum(checker.cpu_times()[:2]) - sum(checker_cpu[:2])
    assert checker_spent > server_spent, (checker_spent, server_spent)


def test_a_killed_checker_is_replaced_and_none_outlives_its_server(server):
    first = code_archive({"a.py": b"1"})
    assert server.http.post("/v1/code-archives", content=first, **POST).status_code == 201
    for checker in _checkers(server):
        checker.kill()
    psutil.wait_procs(_checkers(server), timeout=10)
    second = code_archive({"a.py": b"2"})
    resp = server.http.post("/v1/code-archives", content=second, **POST)
    assert resp.status_code == 201, resp.text
    assert resp.json()["digest"] == "sha256:" + hashlib.sha256(second).hexdigest()
    _refused(server.http.post("/v1/code-archives", content=many_members(20_001), **POST), "20000 files")
    checkers = _checkers(server)
    assert checkers
    server.kill()  # SIGKILL: no shutdown code runs
    gone, alive = psutil.wait_procs(checkers, timeout=10)
    assert not alive, alive
