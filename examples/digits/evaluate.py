"""Evaluate a registered digits checkpoint on a dataset snapshot.

The registry runs this as an ordinary job when a version of digits-classifier
is registered (model.yaml): the hyperparameters carry the training run's own
(to rebuild the network) and `checkpoint_uri`, the version's checkpoint. It
verifies the checkpoint against its manifest, scores the snapshot's
validation split, and logs val_acc and val_loss for the gate's rule.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from train import evaluate, load_data, make_model

import trainyard
from trainyard.runtime.manifest import STATE_FILE, verify


def main() -> int:
    torch.set_num_threads(1)
    ctx = trainyard.init(hparams={"hidden": 128, "dropout": 0.0, "checkpoint_uri": None, "checkpoint_step": 0})
    hp = ctx.hparams
    if not hp["checkpoint_uri"]:
        print("checkpoint_uri: give the checkpoint to evaluate (the registry sets it)", file=sys.stderr)
        return 2
    directory = Path(str(hp["checkpoint_uri"]).removeprefix("file://"))
    why = verify(directory)
    if why is not None:
        print(f"checkpoint {directory} fails verification: {why}", file=sys.stderr)
        return 3
    state = torch.load(directory / STATE_FILE, map_location="cpu", weights_only=True)
    net = make_model(int(hp["hidden"]), float(hp["dropout"]))
    net.load_state_dict(state["model"])
    _, _, x_val, y_val = load_data(ctx.dataset_dir)
    val = evaluate(net, x_val, y_val)
    ctx.log(val, step=int(hp["checkpoint_step"]))
    ctx.finish()
    if ctx.is_main:
        print(f"eval val_acc={val['val_acc']:.4f} val_loss={val['val_loss']:.4f} "
              f"checkpoint step {hp['checkpoint_step']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
