"""A stand-in training script: logs a step every 10 ms until told to stop (or 20 s pass)."""

import sys
import time

import trainyard

ctx = trainyard.init(hparams={"who": "script"})
print(f"INIT_DONE hparams={ctx.hparams} rank={ctx.rank} world={ctx.world_size}", flush=True)
deadline = time.monotonic() + 20
step = 0
while time.monotonic() < deadline:
    step += 1
    ctx.log({"x": float(step)}, step)
    if ctx.should_stop():
        print(f"STOP at step {step}: {ctx.stop_reason}", flush=True)
        ctx.finish()
        sys.exit(0)
    time.sleep(0.01)
print("NO_STOP", flush=True)
sys.exit(3)
