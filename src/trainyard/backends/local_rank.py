"""Runs one rank's command and records how it ended, for a control loop that may restart.

    python -m trainyard.backends.local_rank EXIT_FILE -- CMD...

The wrapper leads the rank's process group, so a signal to the group reaches
the user's code and anything it forked. It outlives a server crash, and its exit
file tells a re-adopting server how the rank ended even though it is no longer
that process's parent.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys


def main() -> int:
    exit_file, sep, *cmd = sys.argv[1:]
    if sep != "--" or not cmd:
        print("usage: local_rank EXIT_FILE -- CMD...", file=sys.stderr)
        return 2
    try:
        child = subprocess.Popen(cmd)
    except OSError as exc:
        print(f"trainyard: cannot start {cmd[0]!r}: {exc.strerror}", file=sys.stderr, flush=True)
        code = 127
    else:
        # The group signal reaches the child directly; the wrapper must live to record the exit.
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        code = child.wait()
    tmp = f"{exit_file}.tmp"
    with open(tmp, "w") as f:
        f.write(str(code))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, exit_file)
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
