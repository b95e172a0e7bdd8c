"""A small MLP on scikit-learn's digits, trained data-parallel with trainyard.

Runs on the platform (`yard submit examples/digits/job.yaml`) or standalone
(`python examples/digits/train.py`). Resumes exactly where its last
checkpoint left off: the steps after a resume are the ones that would have
followed without the interruption. Reads a dataset snapshot at ctx.dataset_dir
when the job names one (job-snapshot.yaml), else scikit-learn's bundled copy.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data.distributed import DistributedSampler

import trainyard

HPARAMS = {"lr": 0.003, "hidden": 128, "epochs": 30, "batch_size": 32, "seed": 0, "step_sleep_s": 0.0,
           "dropout": 0.0, "optimizer": "adam"}
CHECKPOINT = {
    "every_steps": 25,
    "keep_last": 3,
    "keep_best": {"metric": "val_acc", "mode": "max"},
}


DATA_FILES = ("train_x", "train_y", "val_x", "val_y")  # .npy files of a snapshot (export_data.py)


def load_data(data_dir: Path | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The digits, scaled to [0, 1], with a fixed stratified 80/20 split: from scikit-learn, or
    from a dataset snapshot's .npy files when the job names one (the same arrays either way)."""
    if data_dir is not None:
        x_train, y_train, x_val, y_val = (np.load(data_dir / f"{name}.npy") for name in DATA_FILES)
    else:
        x, y = load_digits(return_X_y=True)
        x_train, x_val, y_train, y_val = train_test_split(
            x / 16.0, y, test_size=0.2, random_state=0, stratify=y
        )
    as_x = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    as_y = lambda a: torch.tensor(a, dtype=torch.long)  # noqa: E731
    return as_x(x_train), as_y(y_train), as_x(x_val), as_y(y_val)


def make_model(hidden: int, dropout: float = 0.0) -> nn.Module:
    if dropout <= 0:
        return nn.Sequential(
            nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 10)
        )
    return nn.Sequential(
        nn.Linear(64, hidden), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 10),
    )


def make_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:  # noqa: ANN001
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    if name != "adam":
        raise SystemExit(f"optimizer must be sgd or adam, not {name!r}")
    return torch.optim.Adam(params, lr=lr)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    model.eval()  # dropout off; training steps switch it back with model.train()
    logits = model(x)
    return {
        "val_loss": F.cross_entropy(logits, y).item(),
        "val_acc": (logits.argmax(dim=1) == y).float().mean().item(),
    }


def main() -> int:
    torch.set_num_threads(1)
    ctx = trainyard.init(hparams=HPARAMS, checkpoint=CHECKPOINT)
    hp = ctx.hparams
    torch.manual_seed(int(hp["seed"]))

    x_train, y_train, x_val, y_val = load_data(ctx.dataset_dir)
    x_train, y_train = x_train.to(ctx.device), y_train.to(ctx.device)
    x_val, y_val = x_val.to(ctx.device), y_val.to(ctx.device)
    net = make_model(int(hp["hidden"]), float(hp["dropout"])).to(ctx.device)
    model = DistributedDataParallel(net) if ctx.world_size > 1 else net
    optim = make_optimizer(str(hp["optimizer"]), model.parameters(), float(hp["lr"]))
    sampler = DistributedSampler(
        range(len(x_train)), num_replicas=ctx.world_size, rank=ctx.rank, seed=int(hp["seed"])
    )
    batch_size, epochs = int(hp["batch_size"]), int(hp["epochs"])
    steps_per_epoch = math.ceil(len(sampler) / batch_size)

    step, val = 0, evaluate(net, x_val, y_val)
    restored = ctx.checkpoint.load()
    if restored is not None:
        step, state = restored
        net.load_state_dict(state["model"])
        optim.load_state_dict(state["optim"])
        torch.set_rng_state(state["rng"].cpu())
        val = state["val"]
        print(f"rank {ctx.rank}: resumed from step {step}", flush=True)

    def state() -> dict:
        return {
            "model": net.state_dict(),
            "optim": optim.state_dict(),
            "step": step,
            "rng": torch.get_rng_state(),
            "val": val,
        }

    for epoch in range(step // steps_per_epoch, epochs):
        sampler.set_epoch(epoch)
        order = torch.tensor(list(sampler), device=ctx.device)
        for batch in range(step % steps_per_epoch, steps_per_epoch):
            idx = order[batch * batch_size : (batch + 1) * batch_size]
            model.train()
            loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            step += 1
            ctx.log({"train_loss": loss.item()}, step)
            if batch == steps_per_epoch - 1:
                val = evaluate(net, x_val, y_val)
                ctx.log({**val, "epoch": epoch + 1}, step)
            ctx.checkpoint.save(step, state(), metrics=val)
            if ctx.should_stop():
                ctx.checkpoint.save(step, state(), metrics=val, force=True)
                print(f"rank {ctx.rank}: stopping at step {step}: {ctx.stop_reason}", flush=True)
                ctx.finish()
                return 0
            if hp["step_sleep_s"]:
                time.sleep(float(hp["step_sleep_s"]))

    val = evaluate(net, x_val, y_val)
    ctx.checkpoint.save(step, state(), metrics=val, force=True)
    ctx.finish()
    if ctx.is_main:
        print(f"final val_acc={val['val_acc']:.4f} val_loss={val['val_loss']:.4f} steps={step}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
