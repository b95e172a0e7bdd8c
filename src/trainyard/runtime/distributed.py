"""torch.distributed for one rank: process group, device, and small agreements between ranks."""

from __future__ import annotations

import datetime
import os
from typing import Any

import torch
import torch.distributed as dist


class Distributed:
    """The process group of this gang (none in a one-rank run) and this rank's device.

    Collectives here go over a gloo group even when training uses NCCL: the
    flags they carry live in host memory.
    """

    def __init__(self, rank: int, local_rank: int, world_size: int, timeout_s: float = 1800.0):
        self.rank = rank
        self.local_rank = local_rank
        self.world_size = world_size
        self.device = self._pick_device(local_rank)
        self._control: Any = None
        self._owns_group = False
        if world_size > 1:
            self._init_group(timeout_s)

    @staticmethod
    def _pick_device(local_rank: int) -> torch.device:
        if torch.cuda.is_available():
            index = local_rank % max(1, torch.cuda.device_count())
            torch.cuda.set_device(index)
            return torch.device("cuda", index)
        return torch.device("cpu")

    def _init_group(self, timeout_s: float) -> None:
        backend = "nccl" if self.device.type == "cuda" else "gloo"
        if not dist.is_initialized():
            os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
            os.environ.setdefault("MASTER_PORT", "29500")
            dist.init_process_group(
                backend=backend,
                init_method="env://",
                rank=self.rank,
                world_size=self.world_size,
                timeout=datetime.timedelta(seconds=timeout_s),
                device_id=self.device if backend == "nccl" else None,
            )
            self._owns_group = True
        if dist.get_backend() != "gloo":
            self._control = dist.new_group(backend="gloo")

    @property
    def active(self) -> bool:
        return self.world_size > 1 and dist.is_initialized()

    def any_rank(self, flag: bool) -> bool:
        """True on every rank if it is true on any. Collective: every rank must call it."""
        if not self.active:
            return flag
        t = torch.tensor([1 if flag else 0], dtype=torch.int32)
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self._control)
        return bool(t.item())

    def from_main(self, flag: bool) -> bool:
        """Rank 0's value of `flag` on every rank. Collective: every rank must call it."""
        return bool(self.int_from_main(1 if flag else 0))

    def int_from_main(self, value: int) -> int:
        """Rank 0's `value` on every rank. Collective: every rank must call it."""
        if not self.active:
            return value
        t = torch.tensor([value], dtype=torch.int64)
        dist.broadcast(t, src=0, group=self._control)
        return int(t.item())

    def close(self) -> None:
        if self._owns_group and dist.is_initialized():
            dist.destroy_process_group()
        self._owns_group = False
