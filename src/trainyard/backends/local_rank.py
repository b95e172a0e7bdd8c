"""Runs one rank's command and records how it ended, for a control loop that may restart.

    python -m trainyard.backends.local_rank EXIT_FILE -- CMD...

The wrapper leads the rank's process group, so a signal to the group reaches
the user's code and anything it forked. It outlives a server crash, and its exit
file tells a re-adopting server how the rank ended even though it is no longer
that process's parent.

When the job has secrets (TRAINYARD_SECRET_NAMES lists the variables that hold
them), the rank's output passes through the wrapper on its way to the log, each
value replaced by `[secret NAME]`; otherwise the rank writes to its log directly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

from trainyard.backends.redaction import Redactor
from trainyard.spec import LaunchEnv

CHUNK = 64 * 1024
DRAIN_S = 5.0  # after the rank exits, how long its output may take to arrive; a forked child may hold the pipe


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def copy_redacted(source: int, log: int, redactor: Redactor) -> None:
    """The rank's output to its log, secrets replaced, until the rank and its children close it."""
    while chunk := os.read(source, CHUNK):
        _write_all(log, redactor.feed(chunk))
    _write_all(log, redactor.flush())


def _redactor() -> Redactor:
    names = [n for n in os.environ.get(LaunchEnv.SECRET_NAMES, "").split(",") if n]
    return Redactor({n: os.environ.get(n, "") for n in names})


def main() -> int:
    exit_file, sep, *cmd = sys.argv[1:]
    if sep != "--" or not cmd:
        print("usage: local_rank EXIT_FILE -- CMD...", file=sys.stderr)
        return 2
    redactor = _redactor()
    copier = None
    try:
        if redactor:
            output, rank_end = os.pipe()
            try:
                child = subprocess.Popen(cmd, stdout=rank_end, stderr=rank_end)
            finally:
                os.close(rank_end)  # the rank (and what it forks) holds the only write end: EOF when they exit
            copier = threading.Thread(target=copy_redacted, args=(output, sys.stdout.fileno(), redactor),
                                      daemon=True)
            copier.start()
        else:
            child = subprocess.Popen(cmd)
    except OSError as exc:
        print(f"trainyard: cannot start {cmd[0]!r}: {exc.strerror}", file=sys.stderr, flush=True)
        code = 127
    else:
        # The group signal reaches the child directly; the wrapper must live to record the exit.
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        code = child.wait()
        if copier is not None:
            copier.join(DRAIN_S)  # the log is whole before the exit is recorded
    tmp = f"{exit_file}.tmp"
    with open(tmp, "w") as f:
        f.write(str(code))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, exit_file)
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
