"""Time the training loop is stalled by `ctx.checkpoint.save()` vs a plain torch.save.

The state is a real model and Adam optimizer, about 500 MB. Each save is followed
by a real forward/backward and then optimizer.step(), as in a training loop. Prints
one JSON line per measurement, each with the baseline from the same run:
- torch_save: plain torch.save of the state to local disk (the baseline);
- save_blocked_first: the first (default, safe) save, buffers allocated and faulted in;
- save_safe / save_overlap: every later save, in the default mode and with overlap=True:
  time blocked in save(), the time the next optimizer.step() waited for the overlapped
  copy (the step pre-hook), and their sum, the stall — target <= 10 % of torch.save;
  also the wall-clock change of that forward/backward and step against steps with no
  save (memory-bandwidth and background-writer contention; both modes pay the writer's);
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
BATCH = 32


def make_state() -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = nn.Sequential(*[nn.Linear(3200, 3200) for _ in range(4)])
    optim = torch.optim.Adam(model.parameters(), lr=1e-4)
    forward_backward(model)
    optim.step()  # Adam's moments exist from the first step: 3x the parameters
    return model, optim


def forward_backward(model: nn.Module) -> None:
    model.zero_grad(set_to_none=False)
    x = torch.randn(BATCH, 3200)
    model(x).pow(2).mean().backward()


def train_step(model: nn.Module, optim: torch.optim.Optimizer) -> None:
    forward_backward(model)
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

        normal_fb = statistics.median(timed(lambda: forward_backward(model)) for _ in range(3))
        normal_step = statistics.median(timed(optim.step) for _ in range(3))
        ctx = trainyard.init()
        ratio = lambda s: round(s / baseline, 4)  # noqa: E731
        first = steady = 0.0
        committed: list[float] = []
        for mode, overlap in [("save_safe", False), ("save_overlap", True)]:
            blocked, waited, fb_extra, step_extra = [], [], [], []
            for _ in range(SAVES + (0 if overlap else 1)):
                step = len(committed) + 1
                start = time.perf_counter()
                ctx.checkpoint.save(step, state_of(model, optim, step), overlap=overlap)
                blocked.append(time.perf_counter() - start)
                fb_extra.append(timed(lambda: forward_backward(model)) - normal_fb)
                wait_before = ctx.checkpoint.step_wait_s
                step_extra.append(timed(optim.step) - normal_step)
                waited.append(ctx.checkpoint.step_wait_s - wait_before)
                ctx.checkpoint.wait()
                committed.append(time.perf_counter() - start)
            if not overlap:  # the first save of the run allocates the snapshot buffers
                first = blocked.pop(0)
                waited.pop(0), fb_extra.pop(0), step_extra.pop(0)
                emit(bench="save_blocked_first", seconds=first, baseline_torch_save_s=baseline,
                     ratio=ratio(first))
            b, w = statistics.median(blocked), statistics.median(waited)
            stall = b + w
            emit(bench=mode, overlap=overlap, saves=len(blocked), baseline_torch_save_s=baseline,
                 blocked_s=b, blocked_ratio=ratio(b), next_step_wait_s=w, stall_s=stall,
                 stall_ratio=ratio(stall), target_ratio=TARGET_RATIO,
                 meets_target=stall / baseline <= TARGET_RATIO,
                 forward_backward_s=normal_fb, forward_backward_extra_s=statistics.median(fb_extra),
                 step_s=normal_step, step_extra_s=statistics.median(step_extra),
                 next_step_wait_max_s=max(waited),
                 loop_extra_s=statistics.median(
                     x + y + z for x, y, z in zip(blocked, fb_extra, step_extra, strict=True)),
                 note="stall = blocked in save() + next optimizer.step() waiting for the copy; "
                      "loop_extra = wall-clock cost to the loop incl. background-writer contention")
            if not overlap:
                steady = b
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
         ratio=steady / baseline, note="the default: copy into buffers kept from the last save")
    fork_s, cow_s = fork_snapshot_cost(model, optim)
    emit(bench="snapshot_fork", seconds=fork_s, cow_penalty_next_step_s=cow_s,
         baseline_torch_save_s=baseline, ratio=(fork_s + cow_s) / baseline,
         note="os.fork blocks briefly, then copy-on-write faults slow the next optimizer step")
    return 0


if __name__ == "__main__":
    sys.exit(main())
