"""System metrics per rank, sampled on a background thread and shipped as ordinary metrics.

Every `TRAINYARD_SYSTEM_METRICS_INTERVAL_S` seconds (default 10; 0 turns it off) each rank
records, under keys prefixed `system/rank{N}/`:

- `cpu_percent`: this process's CPU use since the last sample (100 = one core busy),
- `rss_mb`: its resident memory,
- `gpu_utilization_percent`, `gpu_memory_mb`: its GPU's, through NVML, when there is one.

Points carry the rank's current training step, so they line up with the loss; the server
does not count `system/` keys as job progress. Sampling costs well under a millisecond.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

import psutil

from trainyard.runtime.client_run import ClientRun
from trainyard.runtime.launch import RankEnv
from trainyard.runtime.metrics import MetricShipper, Send, server_send

log = logging.getLogger("trainyard.runtime")

INTERVAL_ENV = "TRAINYARD_SYSTEM_METRICS_INTERVAL_S"
DEFAULT_INTERVAL_S = 10.0


def interval_s() -> float:
    raw = os.environ.get(INTERVAL_ENV, "")
    try:
        return max(0.0, float(raw)) if raw else DEFAULT_INTERVAL_S
    except ValueError:
        log.warning("trainyard: %s=%r is not a number; sampling every %g s", INTERVAL_ENV, raw,
                    DEFAULT_INTERVAL_S)
        return DEFAULT_INTERVAL_S


def _nvml_handle(local_rank: int) -> Any:
    """This rank's GPU as an NVML handle, or None without a GPU or NVML."""
    try:
        import pynvml

        pynvml.nvmlInit()
        if pynvml.nvmlDeviceGetCount() == 0:
            return None
        visible = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
        device = visible[local_rank % len(visible)].strip() if visible else str(local_rank)
        if device.isdigit():
            return pynvml.nvmlDeviceGetHandleByIndex(int(device))
        return pynvml.nvmlDeviceGetHandleByUUID(device)
    except Exception:  # noqa: BLE001 - no driver, no library, no such device: no GPU metrics
        return None


class SystemSampler:
    """Samples this process (and its GPU) every `interval_s` and logs through a MetricShipper."""

    def __init__(self, send: Send, rank: int, local_rank: int, interval_s: float,
                 step: Callable[[], int | None]):
        self.prefix = f"system/rank{rank}/"
        self.interval_s = interval_s
        self._step = step
        self._process = psutil.Process()
        self._process.cpu_percent(None)  # primes the counter: the first real sample covers one interval
        self._gpu = _nvml_handle(local_rank)
        self._shipper = MetricShipper(send, interval_s=min(interval_s, 5.0))
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="trainyard-system-metrics", daemon=True)
        self._thread.start()

    def sample(self) -> dict[str, float]:
        values = {
            "cpu_percent": self._process.cpu_percent(None),
            "rss_mb": self._process.memory_info().rss / 2**20,
        }
        if self._gpu is not None:
            try:
                import pynvml

                rates = pynvml.nvmlDeviceGetUtilizationRates(self._gpu)
                values["gpu_utilization_percent"] = float(rates.gpu)
                values["gpu_memory_mb"] = pynvml.nvmlDeviceGetMemoryInfo(self._gpu).used / 2**20
            except Exception:  # noqa: BLE001 - a GPU that stops answering costs its metrics, not the run
                self._gpu = None
        return {self.prefix + k: v for k, v in values.items()}

    def _run(self) -> None:
        while not self._closing.wait(self.interval_s):
            try:
                self._shipper.log(self.sample(), self._step() or 0)
            except psutil.Error as exc:
                log.info("trainyard: system metrics sample failed (%s)", exc)

    def close(self, timeout: float = 5.0) -> None:
        self._closing.set()
        self._thread.join(timeout=2.0)
        self._shipper.close(timeout)


def start(
    env: RankEnv, connect: Callable[[], Any], step: Callable[[], int | None], run: ClientRun | None = None
) -> SystemSampler | None:
    """This rank's sampler: to its job's attempt, or to the run of a script pointed at a server.
    None for a standalone run with no server, or when sampling is off."""
    every = interval_s()
    send = run.send() if run is not None else None if env.standalone else server_send(connect, env.rank)
    if send is None or every <= 0:
        return None
    return SystemSampler(send, env.rank, env.local_rank, every, step)
