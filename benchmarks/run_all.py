"""`make bench`: run every benchmark in this folder, one after another; each prints JSON lines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    scripts = sorted(p for p in HERE.glob("*.py") if p.name != "run_all.py" and not p.name.startswith("_"))
    failed = 0
    for script in scripts:
        print(f"# {script.relative_to(HERE.parent)}", file=sys.stderr, flush=True)
        failed |= subprocess.run([sys.executable, str(script)]).returncode != 0
    return int(failed)


if __name__ == "__main__":
    sys.exit(main())
