"""A rank's life with the platform: first heartbeat, stop requests, fencing, SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.runtime.recording_server import RecordingServer
from trainyard.runtime.launch import read_launch_env
from trainyard.spec import CheckpointPolicy

SCRIPT = Path(__file__).with_name("rank_script.py")


def start_rank(tmp_path: Path, recorder: RecordingServer | None, **env: str) -> subprocess.Popen:
    full = {k: v for k, v in os.environ.items() if not k.startswith("TRAINYARD_")}
    full.update({"TRAINYARD_RUN_DIR": str(tmp_path / "run"), **env})
    if recorder is not None:
        full.update({
            "TRAINYARD_SERVER": recorder.url,
            "TRAINYARD_JOB_ID": "job-1",
            "TRAINYARD_ATTEMPT": "1",
            "TRAINYARD_CHECKPOINT_DIR": str(tmp_path / "checkpoints"),
            "TRAINYARD_HEARTBEAT_INTERVAL_S": env.get("TRAINYARD_HEARTBEAT_INTERVAL_S", "0.1"),
        })
    return subprocess.Popen(
        [sys.executable, str(SCRIPT)], env=full, cwd=tmp_path, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )


def read_until(proc: subprocess.Popen, marker: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if marker in line:
            return line
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"{marker!r} never printed")


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=30)
    return proc.returncode, out


def test_first_heartbeat_reaches_the_server_before_init_returns(tmp_path, recorder):
    proc = start_rank(tmp_path, recorder, TRAINYARD_HEARTBEAT_INTERVAL_S="60")
    read_until(proc, "INIT_DONE")
    with recorder.lock:
        beats = list(recorder.heartbeats)
    assert [(b["rank"], b["pid"], b["attempt"]) for b in beats] == [(0, proc.pid, 1)]
    proc.send_signal(signal.SIGTERM)
    assert finish(proc)[0] == 0


def test_init_waits_briefly_for_a_server_that_is_starting(tmp_path, recorder):
    recorder.stop()
    proc = start_rank(tmp_path, recorder, TRAINYARD_HEARTBEAT_INTERVAL_S="60")
    time.sleep(2.5)  # torch import plus a few failed beats
    recorder.start()
    read_until(proc, "INIT_DONE")
    assert recorder.heartbeats and recorder.heartbeats[0]["pid"] == proc.pid
    proc.send_signal(signal.SIGTERM)
    assert finish(proc)[0] == 0


def test_server_stop_reply_makes_should_stop_true(tmp_path, recorder):
    proc = start_rank(tmp_path, recorder)
    read_until(proc, "INIT_DONE")
    recorder.stop_reason = "cancelled by alice"
    line = read_until(proc, "STOP at step")
    assert "cancelled by alice" in line
    code, _ = finish(proc)
    assert code == 0
    assert recorder.heartbeats[-1]["step"] is not None  # beats carry the last step logged
    assert recorder.points, "metrics logged before the stop were delivered at finish"


def test_stale_attempt_makes_should_stop_true(tmp_path, recorder):
    proc = start_rank(tmp_path, recorder)
    read_until(proc, "INIT_DONE")
    recorder.stale = True
    assert "no longer current" in read_until(proc, "STOP at step")
    assert finish(proc)[0] == 0


def test_sigterm_makes_should_stop_true_in_a_standalone_run(tmp_path):
    proc = start_rank(tmp_path, None)
    read_until(proc, "INIT_DONE")
    proc.send_signal(signal.SIGTERM)
    assert "received SIGTERM" in read_until(proc, "STOP at step")
    assert finish(proc)[0] == 0
    assert (tmp_path / "run" / "metrics.jsonl").read_text().count('"key": "x"') >= 1


def test_environment_hparams_and_policy_override_the_scripts_defaults(tmp_path):
    env = read_launch_env(
        hparams={"lr": 0.1, "epochs": 3},
        checkpoint={"every_steps": 100},
        environ={
            "TRAINYARD_HPARAMS": '{"lr": 0.5}',
            "TRAINYARD_CHECKPOINT_POLICY": '{"every_steps": 7, "keep_last": 2}',
            "TRAINYARD_RUN_DIR": str(tmp_path),
        },
    )
    assert env.hparams == {"lr": 0.5, "epochs": 3}
    assert env.policy == CheckpointPolicy(every_steps=7, keep_last=2)
    assert env.standalone and env.world_size == 1
    assert env.checkpoint_dir == tmp_path / "checkpoints"


def test_importing_trainyard_leaves_torch_unloaded_until_init_is_used():
    code = (
        "import sys, trainyard; assert 'torch' not in sys.modules; "
        "trainyard.init; assert 'torch' in sys.modules"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
