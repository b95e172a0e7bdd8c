"""The digits example trains to accuracy, stops on SIGTERM, and resumes exactly where it left off."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.runtime.recording_server import RecordingServer
from tests.runtime.test_checkpoint_protocol import due_steps
from trainyard.backends.local import free_port
from trainyard.spec import CheckpointPolicy

TRAIN = Path(__file__).resolve().parents[2] / "examples" / "digits" / "train.py"


def base_env(run_dir: Path, **hparams: object) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINYARD_")}
    env.update({"TRAINYARD_RUN_DIR": str(run_dir), "TRAINYARD_HPARAMS": json.dumps(hparams)})
    return env


def run_standalone(run_dir: Path, **hparams: object) -> str:
    done = subprocess.run(
        [sys.executable, str(TRAIN)], env=base_env(run_dir, **hparams), cwd=run_dir.parent,
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def train_losses(run_dir: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["value"] for r in rows if r["key"] == "train_loss"}


def final_acc(stdout: str) -> float:
    match = re.search(r"final val_acc=([0-9.]+)", stdout)
    assert match, stdout
    return float(match.group(1))


def test_standalone_run_reaches_95_percent_validation_accuracy(tmp_path):
    out = run_standalone(tmp_path / "run")
    assert final_acc(out) >= 0.95
    assert sorted(train_losses(tmp_path / "run")) == list(range(1, 1351))  # 30 epochs x 45 steps


def test_sigterm_mid_training_checkpoints_and_resume_repeats_the_same_steps(tmp_path):
    reference = tmp_path / "reference"
    run_standalone(reference, epochs=4)
    expected = train_losses(reference)

    interrupted = tmp_path / "interrupted"
    proc = subprocess.Popen(
        [sys.executable, str(TRAIN)], env=base_env(interrupted, epochs=4, step_sleep_s=0.02),
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    metrics = interrupted / "metrics.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not metrics.exists() or len(train_losses(interrupted)) < 60):
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    stopped_at = int(re.search(r"stopping at step (\d+): received SIGTERM", out).group(1))
    assert 60 <= stopped_at < 180

    out = run_standalone(interrupted, epochs=4)
    assert f"resumed from step {stopped_at}" in out
    assert train_losses(interrupted) == expected  # bit for bit: the same steps followed


def test_two_ranks_on_the_platform_ship_metrics_and_commit_checkpoints(tmp_path, recorder: RecordingServer):
    port = free_port()
    ranks = []
    for rank in (0, 1):
        env = base_env(tmp_path / "run", epochs=3)
        env.update({
            "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2",
            "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
            "TRAINYARD_SERVER": recorder.url, "TRAINYARD_JOB_ID": "job-1", "TRAINYARD_ATTEMPT": "2",
            "TRAINYARD_CHECKPOINT_DIR": str(tmp_path / "checkpoints"),
            "TRAINYARD_CHECKPOINT_POLICY": json.dumps({"every_steps": 20, "keep_last": 3}),
            "TRAINYARD_HEARTBEAT_INTERVAL_S": "0.2",
        })
        ranks.append(subprocess.Popen(
            [sys.executable, str(TRAIN)], env=env, cwd=TRAIN.parent,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        ))
    outs = [p.communicate(timeout=120)[0] for p in ranks]
    assert [p.returncode for p in ranks] == [0, 0], outs
    assert "final val_acc" in outs[0]

    steps = sorted(p["step"] for p in recorder.points if p["key"] == "train_loss")
    assert steps == list(range(1, 70))  # 3 epochs x 23 steps, from rank 0 only
    training = [p for p in recorder.points if not p["key"].startswith("system/")]  # each rank samples its own
    assert {p["rank"] for p in training} == {0}
    assert {(b["rank"], b["pid"]) for b in recorder.heartbeats} == {(0, ranks[0].pid), (1, ranks[1].pid)}
    committed = [c["step"] for c in recorder.commits]
    policy = CheckpointPolicy(every_steps=20, keep_last=3)
    assert committed == [*due_steps(policy, range(1, 70)), 69]  # and the final forced save
    assert all(c["attempt"] == 2 for c in recorder.commits)
    assert all((tmp_path / "checkpoints" / f"a002-s{c['step']:09d}" / "MANIFEST.json").is_file()
               for c in recorder.commits)
