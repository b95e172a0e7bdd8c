"""Runs a gang's ranks as processes on this machine."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psutil

from trainyard.backends.base import Backend, Capacity, GangLaunch, Handle, Placement, RankStatus
from trainyard.backends.environment import rank_environment
from trainyard.scheduler.model import Node
from trainyard.spec import LaunchEnv

NODE_NAME = "local"
RANK_WRAPPER = "trainyard.backends.local_rank"  # records each rank's exit beside its log; redacts it
PYTHON_NAMES = {"python", "python3", f"python3.{sys.version_info.minor}"}


def count_gpus() -> int:
    """GPUs NVML sees; 0 where there is no driver."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return int(pynvml.nvmlDeviceGetCount())
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # noqa: BLE001 - no driver, no library, no device: all mean zero GPUs
        return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _alive(pid: int, create_time: float) -> bool:
    """True if `pid` is still the process we started (not a reused pid) and not a zombie."""
    try:
        p = psutil.Process(pid)
        return abs(p.create_time() - create_time) < 1.0 and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class LocalBackend(Backend):
    name = "local"

    def __init__(self, cpus: float | None = None, gpus: int | None = None, memory_gb: float | None = None):
        self._capacity = Capacity(
            cpus=cpus if cpus is not None else float(os.cpu_count() or 1),
            gpus=gpus if gpus is not None else count_gpus(),
            memory_gb=memory_gb if memory_gb is not None else psutil.virtual_memory().total / 2**30,
        )
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._gpus_in_use: dict[str, list[int]] = {}  # job/attempt -> GPU indices

    def capacity(self) -> Capacity:
        return self._capacity

    def nodes(self) -> list[Node]:
        cap = self._capacity
        return [Node(NODE_NAME, gpus=cap.gpus, cpus=cap.cpus, memory_gb=cap.memory_gb)]

    def _pick_gpus(self, key: str, count: int) -> list[int]:
        busy = {g for gs in self._gpus_in_use.values() for g in gs}
        free = [g for g in range(self._capacity.gpus) if g not in busy]
        if len(free) < count:
            raise RuntimeError(f"needs {count} GPUs, {len(free)} free")
        self._gpus_in_use[key] = free[:count]
        return free[:count]

    def launch(self, gang: GangLaunch, placement: Placement) -> Handle:
        elsewhere = sorted(set(placement) - {NODE_NAME})
        if elsewhere:
            raise RuntimeError(f"placed on {', '.join(elsewhere)}, but this backend runs only on {NODE_NAME!r}")
        res = gang.resources
        key = f"{gang.job_id}/{gang.attempt}"
        gpus = self._pick_gpus(key, res.total_gpus) if res.total_gpus else []
        port = free_port()
        gang.log_dir.mkdir(parents=True, exist_ok=True)
        argv = list(gang.entrypoint)
        if argv[0] in PYTHON_NAMES:  # "python" means the interpreter trainyard runs on
            argv[0] = sys.executable
        handle: Handle = {"backend": self.name, "master_port": port, "gpus": gpus, "key": key,
                          "log_dir": str(gang.log_dir), "ranks": [], "placement": {NODE_NAME: res.total_gpus}}
        try:
            for rank in range(res.workers):
                handle["ranks"].append(self._start_rank(gang, argv, rank, port, gpus))
        except BaseException:  # a gang runs whole or not at all: stop the ranks already started
            self.signal(handle, signal.SIGKILL)
            self.cleanup(handle)
            raise
        return handle

    def _start_rank(self, gang: GangLaunch, argv: list[str], rank: int, port: int, gpus: list[int]) -> dict:
        res = gang.resources
        ours = {"PYTHONUNBUFFERED": "1", "RANK": str(rank), "LOCAL_RANK": str(rank),
                "WORLD_SIZE": str(res.workers), "LOCAL_WORLD_SIZE": str(res.workers),
                "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        if res.gpus_per_worker:
            mine = gpus[rank * res.gpus_per_worker:(rank + 1) * res.gpus_per_worker]
            ours["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, mine))
            ours["LOCAL_RANK"] = "0"  # each rank sees only its own devices
        else:
            ours["CUDA_VISIBLE_DEVICES"] = ""  # asked for no GPU: sees none of those others hold
        if gang.secret_names:  # the rank wrapper replaces their values in the log as it writes it
            ours[LaunchEnv.SECRET_NAMES] = ",".join(gang.secret_names)
        env = rank_environment(ours, gang.env)
        exit_file = gang.log_dir / f"rank-{rank}.exit"
        log = open(gang.log_dir / f"rank-{rank}.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", RANK_WRAPPER, str(exit_file), "--", *argv],
                cwd=gang.code_dir, env=env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        finally:
            log.close()
        self._children[proc.pid] = proc
        return {"rank": rank, "pid": proc.pid, "create_time": psutil.Process(proc.pid).create_time(),
                "exit_file": str(exit_file)}

    def abandon(self, job_id: str, attempt: int, log_dir: Path) -> int:
        """Ranks are found by their wrapper's command line, which names an exit file in `log_dir`."""
        prefix = str(log_dir) + os.sep
        found = 0
        for p in psutil.process_iter(["cmdline"]):
            cmd = p.info.get("cmdline") or []
            if RANK_WRAPPER in cmd and any(a.startswith(prefix) for a in cmd):
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                    found += 1
                except (ProcessLookupError, PermissionError):
                    pass
        self._gpus_in_use.pop(f"{job_id}/{attempt}", None)
        return found

    def adopt(self, handle: Handle) -> None:
        """Take back the GPUs of a gang found running after a restart."""
        if handle.get("gpus"):
            self._gpus_in_use[handle["key"]] = list(handle["gpus"])

    def poll(self, handle: Handle) -> list[RankStatus]:
        out = []
        for r in handle.get("ranks", []):
            child = self._children.get(r["pid"])
            if child is not None and child.poll() is not None:
                self._children.pop(r["pid"], None)  # reaped
            exit_file = Path(r["exit_file"])
            if exit_file.exists():
                out.append(RankStatus(r["rank"], running=False, exit_code=int(exit_file.read_text())))
            elif _alive(r["pid"], r["create_time"]):
                out.append(RankStatus(r["rank"], running=True))
            else:
                out.append(RankStatus(r["rank"], running=False, lost=True))
        if out and not any(s.running for s in out):
            self._gpus_in_use.pop(handle.get("key", ""), None)
        return out

    def signal(self, handle: Handle, signum: int) -> None:
        for r in handle.get("ranks", []):
            if not _alive(r["pid"], r["create_time"]):
                continue
            try:
                os.killpg(r["pid"], signum)
            except ProcessLookupError:
                pass

    def cleanup(self, handle: Handle) -> None:
        """Forget a finished gang's bookkeeping (its logs stay)."""
        self._gpus_in_use.pop(handle.get("key", ""), None)
        for r in handle.get("ranks", []):
            self._children.pop(r["pid"], None)
