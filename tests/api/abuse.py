"""Abusive request bodies made as streams (never whole in this process) and a watch on the server.

A body here is a generator of chunks: the test holds one chunk at a time, so a 300 MiB upload
or an 8 GiB gzip bomb costs this process a few MiB, and the server's memory is what is measured.
"""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator

import psutil

MiB = 1 << 20
GiB = 1 << 30


def repeated(chunk: bytes, total: int) -> Iterator[bytes]:
    """`total` bytes made of `chunk` over and over."""
    sent = 0
    while sent < total:
        piece = chunk[: total - sent]
        sent += len(piece)
        yield piece


def metric_batch(total: int) -> Iterator[bytes]:
    """A well-formed JSON metric batch of about `total` bytes: it would decode if the server let it."""
    point = b'{"key":"loss","step":1,"timestamp":1700000000.5,"value":0.25},'
    per_chunk = MiB // len(point)
    chunk = point * per_chunk
    yield b'{"points":['
    for _ in range(max(1, total // len(chunk))):
        yield chunk
    yield point[:-1] + b"]}"


def tar_header(name: str, size: int, kind: bytes = tarfile.REGTYPE, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.type = size, kind
    return info.tobuf(fmt)


def gzip_bomb(inflated: int, name: str = "weights.bin", kind: bytes = tarfile.REGTYPE,
              fmt: int = tarfile.PAX_FORMAT, piece: int = 64 * MiB) -> Iterator[bytes]:
    """A tar.gz with one member of `inflated` zero bytes, as concatenated gzip members: 64 MiB of
    zeros compresses to ~64 KiB once and is sent again and again (8 GiB is ~8 MiB on the wire)."""
    yield gzip.compress(tar_header(name, inflated, kind, fmt))
    zeros = gzip.compress(bytes(piece))
    full, rest = divmod(inflated, piece)
    for _ in range(full):
        yield zeros
    yield gzip.compress(bytes(rest + (-inflated % 512) + 1024))  # the member's padding, end of archive


def many_members(count: int) -> bytes:
    """A small tar.gz of `count` empty files: cheap to send, expensive to unpack."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb") as gz:
        for i in range(count):
            gz.write(tar_header(f"f/{i}", 0))
        gz.write(bytes(1024))
    return buf.getvalue()


def code_archive(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


# A process of its own, so that the test's own work (making bodies) never delays a probe.
_PROBE = """
import sys, time, httpx
url, every = sys.argv[1], float(sys.argv[2])
with httpx.Client(timeout=60) as http:
    while True:
        t0 = time.perf_counter()
        status = http.get(url).status_code
        print(time.monotonic(), time.perf_counter() - t0, status, flush=True)
        time.sleep(every)
"""


class Watch:
    """Samples the server's RSS (a thread) and the latency of `/healthz` (a process) while a block runs."""

    def __init__(self, pid: int, url: str, every_s: float = 0.05):
        self.process = psutil.Process(pid)
        self.url = url
        self.every_s = every_s
        self.start_rss = self.peak_rss = 0
        self.healthz: list[tuple[float, float, int]] = []  # (monotonic time, seconds, status)
        self._done = threading.Event()
        self._sampler = threading.Thread(target=self._sample_rss, daemon=True)
        self._probe: subprocess.Popen[bytes] | None = None
        self._out = tempfile.TemporaryFile()  # noqa: SIM115 - the probe writes here until __exit__

    def _sample_rss(self) -> None:
        while not self._done.is_set():
            self.peak_rss = max(self.peak_rss, self.process.memory_info().rss)
            time.sleep(0.01)

    @property
    def healthz_s(self) -> list[float]:
        return [s for _, s, _ in self.healthz]

    @property
    def worst_healthz_s(self) -> float:
        return max(self.healthz_s)

    @property
    def rss_growth(self) -> int:
        """How far the server's RSS rose above where it was when the watch began."""
        return self.peak_rss - self.start_rss

    def __enter__(self) -> Watch:
        self.start_rss = self.peak_rss = self.process.memory_info().rss
        self._sampler.start()
        self._probe = subprocess.Popen([sys.executable, "-c", _PROBE, f"{self.url}/healthz", str(self.every_s)],
                                       stdout=self._out)
        deadline = time.monotonic() + 30
        while not os.fstat(self._out.fileno()).st_size and time.monotonic() < deadline:
            time.sleep(0.05)  # until its first answer: the probe is running
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._sampler.join(60)
        assert self._probe is not None
        self._probe.terminate()
        self._probe.wait(30)
        self._out.seek(0)
        for line in self._out.read().decode().splitlines():
            if len(fields := line.split()) == 3:  # the last line may be cut short by terminate()
                self.healthz.append((float(fields[0]), float(fields[1]), int(fields[2])))
        self._out.close()
        assert self.healthz and all(status == 200 for _, _, status in self.healthz)
