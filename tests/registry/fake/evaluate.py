"""An evaluation without torch: checks the checkpoint it is given exists, reads its dataset, and
logs val_acc = the training run's `eval_acc` hyperparameter (which the registry passes on)."""

import json
import os
import sys
import time
from pathlib import Path

from trainyard.client import Client

hp = json.loads(os.environ["TRAINYARD_HPARAMS"])
state = Path(hp["checkpoint_uri"].removeprefix("file://")) / "state.pt"
if not state.is_file():
    sys.exit(f"no checkpoint at {state}")
labels = (Path(os.environ["TRAINYARD_DATASET_DIR"]) / "labels.txt").read_text().split()
rank = Client(os.environ["TRAINYARD_SERVER"]).attempt(os.environ["TRAINYARD_JOB_ID"],
                                                       int(os.environ["TRAINYARD_ATTEMPT"]))
rank.metrics(0, [{"key": "val_acc", "step": hp["checkpoint_step"], "timestamp": time.time(),
                  "value": hp["eval_acc"]}])
print(f"evaluated {hp['model_version']} ({state.read_text()}) on {len(labels)} labels", flush=True)
