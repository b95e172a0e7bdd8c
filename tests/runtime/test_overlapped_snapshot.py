"""Overlapped checkpoint snapshots: the optimizer never tears one, because its step waits."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

from trainyard.runtime.checkpoint import Checkpointer
from trainyard.runtime.commits import LocalCommitLog
from trainyard.runtime.distributed import Distributed
from trainyard.runtime.manifest import STATE_FILE
from trainyard.runtime.snapshot import SMALL_BYTES, Snapshotter
from trainyard.runtime.stop import StopSignal
from trainyard.spec import CheckpointPolicy


def model_and_adam() -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    # 1024x1024 weights (4 MiB) are copied in the background; biases (4 KiB) before save() returns.
    model = nn.Sequential(nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 10))
    return model, torch.optim.Adam(model.parameters(), lr=1e-2)


def train_step(model: nn.Module, optim: torch.optim.Optimizer, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(64, 1024, generator=g), torch.randint(0, 10, (64,), generator=g)
    optim.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    optim.step()


def state_of(model: nn.Module, optim: torch.optim.Optimizer, step: int) -> dict:
    return {"model": model.state_dict(), "optim": optim.state_dict(), "step": step}


def cloned(obj: object) -> object:
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {k: cloned(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(cloned(v) for v in obj)
    return obj


def assert_same(a: object, b: object) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys()
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, list | tuple):
        assert isinstance(b, list | tuple) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    else:
        assert a == b


def test_overlapped_checkpoint_holds_the_state_at_save_although_the_optimizer_steps_right_after(
    tmp_path: Path,
) -> None:
    policy = CheckpointPolicy(every_steps=1, keep_last=10)
    ckpt = Checkpointer(tmp_path, policy, LocalCommitLog(tmp_path, policy), 1, Distributed(0, 0, 1), StopSignal())
    model, optim = model_and_adam()
    expected = {}
    for step in range(1, 4):
        train_step(model, optim, seed=step)
        expected[step] = cloned(state_of(model, optim, step))
        assert ckpt.save(step, state_of(model, optim, step), overlap=True)
        optim.step()  # right after save(), with the last gradients: the copy is still running
        train_step(model, optim, seed=100 + step)
    assert ckpt.wait(timeout=60)
    ckpt.close()
    for step, state in expected.items():
        saved = torch.load(tmp_path / f"a001-s{step:09d}" / STATE_FILE, weights_only=True)
        assert_same(saved, state)
    assert not torch.equal(model[0].weight, expected[3]["model"]["0.weight"])  # training moved on


def test_optimizer_step_right_after_an_overlapped_snapshot_starts_only_once_the_copy_is_done() -> None:
    model, optim = model_and_adam()
    train_step(model, optim, seed=1)
    snapshots = Snapshotter()
    snapshots.take(state_of(model, optim, 1), overlap=True)
    train_step(model, optim, seed=2)  # the buffers now hold step-1 values, unlike the model
    snapshot = snapshots.take(state_of(model, optim, 2), overlap=True)
    big = [k for k, v in snapshot["model"].items() if v.nbytes >= SMALL_BYTES]
    assert big  # the case under test: tensors copied in the background
    seen_at_step: dict[str, bool] = {}

    def check(optimizer: object, args: object, kwargs: object) -> None:  # runs after trainyard's hook
        params = model.state_dict()
        seen_at_step.update({k: torch.equal(snapshot["model"][k], params[k]) for k in big})

    handle = register_optimizer_step_pre_hook(check)
    try:
        optim.step()  # immediately: no forward/backward to hide the copy behind
    finally:
        handle.remove()
    assert seen_at_step == dict.fromkeys(big, True)
    snapshots.ready()
    snapshots.release()
