"""A job that reads its dataset snapshot (no torch): prints each file with its mode bits, and
tries to write one (unless it runs as root, whom mode bits do not stop)."""

import os
import stat
from pathlib import Path

root = Path(os.environ["TRAINYARD_DATASET_DIR"])
print(f"dir mode {stat.S_IMODE(root.stat().st_mode):o}", flush=True)
for path in sorted(p for p in root.rglob("*") if p.is_file()):
    mode = stat.S_IMODE(path.stat().st_mode)
    print(f"{path.relative_to(root)}: {path.read_text().strip()} (mode {mode:o})", flush=True)
if os.geteuid() != 0:
    try:
        (root / "a.txt").write_text("changed by the job")
        print("wrote into the snapshot", flush=True)
    except OSError as exc:
        print(f"write refused: {type(exc).__name__}", flush=True)
