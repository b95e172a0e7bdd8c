"""`make demo`: the platform doing its main job, on this machine.

Starts a server in a throwaway TRAINYARD_HOME, submits the digits example
(2 DDP ranks on CPU), kills one rank with SIGKILL once a checkpoint exists, and
lets you watch the gang restart from that checkpoint and finish.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from trainyard.backends.local import free_port

REPO = Path(__file__).resolve().parents[1]
YARD = [sys.executable, "-m", "trainyard.cli.main"]


def say(text: str) -> None:
    print(f"\033[1;36m==> {text}\033[0m", file=sys.stderr, flush=True)


def kill_a_rank_after_first_checkpoint(url: str, token: str, job_id: str) -> None:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as http:
        while True:
            job = http.get(f"/v1/training-jobs/{job_id}").json()
            if job["state"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
                return
            workers = {w["rank"]: w for w in job["workers"]}
            newest = job["checkpoints"][0]["step"] if job["checkpoints"] else 0
            if job["state"] == "RUNNING" and newest >= 200 and workers.get(1, {}).get("pid"):
                say(f"demo: SIGKILL to rank 1 (pid {workers[1]['pid']}) at step {job['step']}; "
                    f"newest checkpoint is step {job['checkpoints'][0]['step']}")
                os.kill(workers[1]["pid"], signal.SIGKILL)
                return
            time.sleep(0.2)


def main() -> int:
    home = Path(os.environ.get("TRAINYARD_HOME") or tempfile.mkdtemp(prefix="trainyard-demo-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "TRAINYARD_HOME": str(home), "TRAINYARD_SERVER": url}
    say(f"starting `yard server --port {port}` (home {home})")
    server = subprocess.Popen([*YARD, "server", "--port", str(port)], env=env)
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        say("yard submit examples/digits/job.yaml  (2 DDP ranks, checkpoint every 25 steps)")
        sub = subprocess.run([*YARD, "submit", "examples/digits/job.yaml", "-q"], env=env, cwd=REPO,
                             capture_output=True, text=True, check=True)
        job_id = sub.stdout.strip()
        say(f"job {job_id}; following it live")
        token = (home / "token").read_text().strip()  # the admin token the server wrote at its first start
        killer = threading.Thread(target=kill_a_rank_after_first_checkpoint, args=(url, token, job_id))
        killer.start()
        code = subprocess.run([*YARD, "watch", job_id], env=env).returncode
        killer.join()
        say(f"yard status {job_id}")
        subprocess.run([*YARD, "status", job_id], env=env)
        say(f"yard logs {job_id} --rank 0 (last lines)")
        logs = subprocess.run([*YARD, "logs", job_id], env=env, capture_output=True, text=True).stdout
        print("\n".join(logs.strip().splitlines()[-4:]))
        say("yard jobs")
        subprocess.run([*YARD, "jobs"], env=env)
        return code
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    sys.exit(main())
