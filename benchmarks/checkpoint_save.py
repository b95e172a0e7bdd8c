"""Time the training loop is blocked in `ctx.checkpoint.save()` vs a plain torch.save.

The state is a real model and Adam optimizer, about 500 MB. Prints one JSON
line per measurement, each with the baseline from the same run:
- torch_save: plain torch.save of the state to local disk (the baseline);
- save_blocked_first / save_blocked: time in save() for the first save (buffers
  are allocated and faulted in) and the median of later ones; target <= 10 %;
- save_committed: save() until committed (written, fsynced, manifest), in the background;
- snapshot_clone / snapshot_reused_buffers / snapshot_fork: the snapshot options weighed,
  the fork one with the copy-on-write cost it moves onto the next optimizer step.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

SAVES = 7
TARGET_RATIO = 0.10


def make_state() -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = nn.Sequential(*[nn.Linear(3200, 3200) for _ in range(4)])
    optim = torch.optim.Adam(model.parameters(), lr=1e-4)
    train_step(model, optim)  # Adam's moments exist from the first step: 3x the parameters
    return model, optim


def train_step(model: nn.Module, optim: torch.optim.Optimizer) -> None:
    for p in model.parameters():
        p.grad = torch.full_like(p, 1e-3)
    optim.step()


def state_of(model: nn.Module, optim: torch.optim.Optimizer, step: int) -> dict[str, Any]:
    return {"model": model.state_dict(), "optim": optim.state_dict(), "step": step}


def nbytes(obj: Any) -> int:
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(nbytes(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(nbytes(v) for v in obj)
    return 0


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def emit(**fields: Any) -> None:
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in fields.items()}),
          flush=True)


def fork_snapshot_cost(model: nn.Module, optim: torch.optim.Optimizer) -> tuple[float, float]:
    """(time os.fork blocks, extra time of the next optimizer step from copy-on-write faults)."""
    normal = statistics.median(timed(lambda: train_step(model, optim)) for _ in range(3))
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child would torch.save its frozen view; here it only holds the pages
        time.sleep(30)
        os._exit(0)
    fork_s = time.perf_counter() - start
    after = timed(lambda: train_step(model, optim))
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return fork_s, after - normal


def main() -> int:
    torch.set_num_threads(1)
    model, optim = make_state()
    size_mb = nbytes(state_of(model, optim, 0)) / 2**20

    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        path = Path(tmp) / "plain.pt"
        plain = []
        for _ in range(3):
            plain.append(timed(lambda: torch.save(state_of(model, optim, 0), path)))
            path.unlink()
        baseline = statistics.median(plain)
        emit(bench="torch_save", state_mb=round(size_mb), seconds=baseline)

        for key in [k for k in os.environ if k.startswith("TRAINYARD_")]:
            del os.environ[key]
        os.environ["TRAINYARD_RUN_DIR"] = tmp
        os.environ["TRAINYARD_CHECKPOINT_POLICY"] = json.dumps({"every_steps": 1, "keep_last": 1})
        import trainyard

        ctx = trainyard.init()
        blocked, committed = [], []
        for step in range(1, SAVES + 1):
            start = time.perf_counter()
            ctx.checkpoint.save(step, state_of(model, optim, step))
            blocked.append(time.perf_counter() - start)
            train_step(model, optim)  # the loop goes on while the files are written
            ctx.checkpoint.wait()
            committed.append(time.perf_counter() - start)
        first, steady = blocked[0], statistics.median(blocked[1:])
        for bench, seconds in [("save_blocked_first", first), ("save_blocked", steady)]:
            emit(bench=bench, seconds=seconds, baseline_torch_save_s=baseline,
                 ratio=seconds / baseline, target_ratio=TARGET_RATIO,
                 ok=seconds / baseline <= TARGET_RATIO)
        emit(bench="save_committed", seconds=statistics.median(committed),
             baseline_torch_save_s=baseline, note="background: write, fsync, sha256, manifest")
        ctx.finish()

    state = state_of(model, optim, 0)
    clone = statistics.median(
        timed(lambda: {k: v.clone() for k, v in state["model"].items()}
              | {"optim": [t.clone() for s in state["optim"]["state"].values() for t in s.values()]})
        for _ in range(3)
    )
    emit(bench="snapshot_clone", seconds=clone, baseline_torch_save_s=baseline,
         ratio=clone / baseline, note="fresh allocation each save: page faults dominate")
    emit(bench="snapshot_reused_buffers", seconds=steady, baseline_torch_save_s=baseline,
         ratio=steady / baseline, note="chosen: copy into buffers kept from the last save")
    fork_s, cow_s = fork_snapshot_cost(model, optim)
    emit(bench="snapshot_fork", seconds=fork_s, cow_penalty_next_step_s=cow_s,
         baseline_torch_save_s=baseline, ratio=(fork_s + cow_s) / baseline,
         note="os.fork blocks briefly, then copy-on-write faults slow the next optimizer step")
    return 0


if __name__ == "__main__":
    sys.exit(main())
