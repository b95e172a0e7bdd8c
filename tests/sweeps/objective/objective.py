"""A trial with no training: a smooth function of its hyperparameters, one point per "epoch".

loss = (x - 2)^2 + (y + 1)^2 + 1/epoch, so every trial improves with epochs and
the best trials are near x=2, y=-1. `crash: true` exits 3 before its first step;
`sleep` slows each epoch so a test can act mid-trial.
"""

import sys
import time

import trainyard

ctx = trainyard.init(hparams={"x": 0.0, "y": 0.0, "epochs": 3, "sleep": 0.0, "crash": False})
hp = ctx.hparams
if hp["crash"]:
    print("crashing on purpose", flush=True)
    sys.exit(3)
for epoch in range(1, int(hp["epochs"]) + 1):
    time.sleep(float(hp["sleep"]))
    loss = (float(hp["x"]) - 2) ** 2 + (float(hp["y"]) + 1) ** 2 + 1 / epoch
    ctx.log({"loss": loss, "epoch": epoch}, step=epoch)
    if ctx.should_stop():
        print(f"stopping at epoch {epoch}: {ctx.stop_reason}", flush=True)
        break
ctx.finish()
