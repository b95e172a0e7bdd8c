"""Code archives checked in worker processes, so that inflating one never holds the server's GIL.

`check_archive` is Python work: a tar.gz of 20,000 empty files is a quarter of a second of tar
headers parsed while the GIL is held, and every request the server answers meanwhile waits for the
GIL at each of its thread hops and I/O calls. In a worker process the check competes with the
server only for a CPU, and a worker runs at a lower priority (`nice`), so the server comes first.

An uploaded archive is sent to a worker in pieces over a pipe and checked as a stream; the worker
answers as soon as it knows (at the first cap passed), and the rest is not sent. Workers start when
first needed and live as long as the pool; one that dies is replaced, and each leaves with its server
(it reads the end of its pipe).
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import os
import queue
import threading
from multiprocessing.connection import Connection
from typing import IO

from trainyard.storage.code_archive import DEFAULT_LIMITS, ArchiveError, ArchiveLimits, check_archive

_PIECE = 1 << 20
_END = b""  # after an archive's last piece
_NICE = 10


class _Received(io.RawIOBase):
    """One archive's pieces, read from the pipe until its end."""

    def __init__(self, conn: Connection):
        self._conn = conn
        self._piece = memoryview(b"")
        self.ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._piece and not self.ended:
            piece = self._conn.recv_bytes()
            self.ended = piece == _END
            self._piece = memoryview(piece)
        n = min(len(buffer), len(self._piece))
        buffer[:n] = self._piece[:n]
        self._piece = self._piece[n:]
        return n

    def skip_rest(self) -> None:
        while not self.ended:
            self.ended = self._conn.recv_bytes() == _END


def _serve(conn: Connection, limits: ArchiveLimits) -> None:
    """A worker: check archive after archive, answering each with its member count or its refusal."""
    with contextlib.suppress(OSError):
        os.nice(_NICE)
    while True:
        archive = _Received(conn)
        try:
            verdict: tuple[str, object] = ("ok", check_archive(archive, limits))
        except ArchiveError as exc:
            [error] = exc.errors
            verdict = ("refused", (error["message"], error["field"]))
        except EOFError:  # the server closed the pipe: it is gone or shutting down
            return
        try:
            conn.send(verdict)
            archive.skip_rest()  # what followed the answer, up to the end marker
        except (EOFError, OSError):  # the pipe closed mid-archive (tarfile took it for a short archive)
            return


class _Worker:
    def __init__(self, ctx: multiprocessing.context.SpawnContext, limits: ArchiveLimits):
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child, limits), name="trainyard-archive-check",
                                   daemon=True)
        self.process.start()
        child.close()

    def check(self, fileobj: IO[bytes]) -> int:
        conn = self.conn
        while not conn.poll() and (piece := fileobj.read(_PIECE)):
            conn.send_bytes(piece)
        conn.send_bytes(_END)
        kind, value = conn.recv()
        if kind == "refused":
            raise ArchiveError(*value)  # type: ignore[misc]
        return value  # type: ignore[return-value]

    def stop(self) -> None:
        self.conn.close()  # the worker reads the end of its pipe and returns
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)


class ArchiveChecks:
    """At most `workers` archives checked at once, each in a worker process of its own."""

    def __init__(self, workers: int = 2, limits: ArchiveLimits = DEFAULT_LIMITS):
        self._ctx = multiprocessing.get_context("spawn")  # never fork a server's threads
        self._limits = limits
        self._slots = threading.BoundedSemaphore(workers)
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._started: list[_Worker] = []
        self._closed = False

    def check(self, fileobj: IO[bytes]) -> int:
        """Read `fileobj` from where it stands to its end as one archive: its member count, or ArchiveError.

        Blocks until a worker is free and has answered: call it from a thread, never an event loop.
        """
        start = fileobj.tell()
        with self._slots:
            for tries_left in (1, 0):
                worker = self._take()
                try:
                    members = worker.check(fileobj)
                except ArchiveError:
                    self._idle.put(worker)
                    raise
                except (EOFError, OSError):  # the worker died (killed, out of memory): once more, on a new one
                    self._forget(worker)
                    if not tries_left:
                        raise
                    fileobj.seek(start)
                    continue
                except BaseException:  # a worker that answered out of turn is not used again
                    self._forget(worker)
                    raise
                self._idle.put(worker)
                return members
        raise AssertionError("unreachable")

    def _take(self) -> _Worker:
        while True:
            try:
                worker = self._idle.get_nowait()
            except queue.Empty:
                break
            if worker.process.is_alive():
                return worker
            self._forget(worker)
        with self._lock:
            if self._closed:
                raise RuntimeError("the archive checks are closed")
            worker = _Worker(self._ctx, self._limits)
            self._started.append(worker)
        return worker

    def _forget(self, worker: _Worker) -> None:
        with self._lock:
            if worker in self._started:
                self._started.remove(worker)
        worker.stop()

    def close(self) -> None:
        """Stop every worker; twice is harmless."""
        with self._lock:
            self._closed, workers, self._started = True, self._started, []
        for worker in workers:
            worker.stop()
