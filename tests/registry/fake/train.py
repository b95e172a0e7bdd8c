"""A training job without torch: one checkpoint per step, committed through the rank API.

Hyperparameters: `val_acc`, a list (one value per step, logged and recorded with the
checkpoint); `pause_after` and `go_file`: after that step, wait until the file exists.
"""

import hashlib
import json
import os
import time
from pathlib import Path

from trainyard.client import Client
from trainyard.spec import checkpoint_dir_name

hp = json.loads(os.environ["TRAINYARD_HPARAMS"])
root = Path(os.environ["TRAINYARD_CHECKPOINT_DIR"])
attempt = int(os.environ["TRAINYARD_ATTEMPT"])
rank = Client(os.environ["TRAINYARD_SERVER"]).attempt(os.environ["TRAINYARD_JOB_ID"], attempt)
for step, acc in enumerate(hp["val_acc"], start=1):
    directory = root / checkpoint_dir_name(attempt, step)  # where the server keeps this step
    directory.mkdir(parents=True)
    data = f"weights at step {step}".encode()
    (directory / "state.pt").write_bytes(data)
    manifest = {"files": [{"path": "state.pt", "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}],
                "step": step}
    (directory / "MANIFEST.json").write_text(json.dumps(manifest))
    rank.metrics(0, [{"key": "val_acc", "step": step, "timestamp": time.time(), "value": acc}])
    rank.commit_checkpoint(step, len(data), manifest, {"val_acc": acc})
    if step == hp.get("pause_after"):
        while not Path(hp["go_file"]).exists():
            time.sleep(0.2)
print(f"final val_acc={hp['val_acc'][-1]}", flush=True)
