"""Abusive request bodies made as streams (never whole in this process) and a watch on the server.

A body here is a generator of chunks: the test holds one chunk at a time, so a 300 MiB upload
or an 8 GiB gzip bomb costs this process a few MiB, and the server's memory is what is measured.
"""

from __future__ import annotations

import functools
import gzip
import io
import itertools
import os
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import IO

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
    zeros compresses to ~64 KiB once and is sent again and again (8 GiB is ~8 MiB on the wire).
    Its parts are made here, so sending it costs this process next to nothing."""
    head = gzip.compress(tar_header(name, inflated, kind, fmt))
    full, rest = divmod(inflated, piece)
    zeros = _compressed_zeros(piece)
    tail = gzip.compress(bytes(rest + (-inflated % 512) + 1024))  # the member's padding, end of archive
    return itertools.chain([head], itertools.repeat(zeros, full), [tail])


@functools.cache
def _compressed_zeros(n: int) -> bytes:  # made once: the test's own CPU stays out of the measurement
    return gzip.compress(bytes(n))


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


# Each probe is a process of its own, so that the test's own work (making bodies) never delays it.
_PROBE = """
import sys, time, httpx
url, every = sys.argv[1], float(sys.argv[2])
with httpx.Client(timeout=60) as http:
    while True:
        start, t0 = time.monotonic(), time.perf_counter()
        status = http.get(url).status_code
        print(start, time.perf_counter() - t0, status, flush=True)
        time.sleep(every)
"""
PROBES = 2


class Watch:
    """Samples the server's RSS (a thread) and the latency of `/healthz` (two probe processes) while a
    block runs.

    A stall of the event loop holds up every request in flight, so it shows as answers of both
    probes late at once; one late answer while the other probe's come back in time is the machine
    scheduling that probe (this suite runs on small shared machines), not the server.
    """

    def __init__(self, pid: int, url: str, every_s: float = 0.05):
        self.process = psutil.Process(pid)
        self.url = url
        self.every_s = every_s
        self.start_rss = self.peak_rss = 0
        self.healthz: list[tuple[int, float, float, int]] = []  # (probe, monotonic start, seconds, status)
        self._done = threading.Event()
        self._sampler = threading.Thread(target=self._sample_rss, daemon=True)
        self._probes: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = []
        self._began = 0.0

    def _sample_rss(self) -> None:
        while not self._done.is_set():
            self.peak_rss = max(self.peak_rss, self.process.memory_info().rss)
            time.sleep(0.01)

    def stalls(self, threshold_s: float = 0.1) -> list[tuple[float, float]]:
        """(start, seconds) of each answer of probe 0 that took `threshold_s` or more while probe 1
        was also waiting that long: together for at least `threshold_s - every_s` (each probe
        waits up to every_s to send its next request)."""
        def late(probe: int) -> list[tuple[float, float]]:
            return [(t, t + s) for p, t, s, _ in self.healthz if p == probe and s >= threshold_s]

        others = late(1)
        return [(a0, a1 - a0) for a0, a1 in late(0)
                if any(min(a1, b1) - max(a0, b0) >= threshold_s - self.every_s for b0, b1 in others)]

    @property
    def rss_growth(self) -> int:
        """How far the server's RSS rose above where it was when the watch began."""
        return self.peak_rss - self.start_rss

    def __enter__(self) -> Watch:
        self.start_rss = self.peak_rss = self.process.memory_info().rss
        self._sampler.start()
        for _ in range(PROBES):
            out = tempfile.TemporaryFile()  # noqa: SIM115 - closed in __exit__
            cmd = [sys.executable, "-c", _PROBE, f"{self.url}/healthz", str(self.every_s)]
            self._probes.append((subprocess.Popen(cmd, stdout=out), out))
            time.sleep(self.every_s / PROBES)  # staggered
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(os.fstat(o.fileno()).st_size for _, o in self._probes):
            time.sleep(0.05)  # until each has answered once: the probes are running
        self._began = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._sampler.join(60)
        for n, (probe, out) in enumerate(self._probes):
            probe.terminate()
            probe.wait(30)
            out.seek(0)
            for line in out.read().decode().splitlines():
                if len(fields := line.split()) == 3:  # the last line may be cut short by terminate()
                    start, seconds, status = float(fields[0]), float(fields[1]), int(fields[2])
                    if start >= self._began:  # the first answers (a new connection) are warm-up
                        self.healthz.append((n, start, seconds, status))
            out.close()
        assert self.healthz and all(status == 200 for *_, status in self.healthz)
