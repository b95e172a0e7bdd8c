"""A fast in-memory copy of training state, so the loop can go on while it is written.

Tensors are copied into buffers kept from the previous save: after the first
save the copy is a memcpy into memory already faulted in, no allocation
(see benchmarks/checkpoint_save.py for why this beats a fresh clone and a
copy-on-write fork). CUDA tensors go to pinned host buffers with an
asynchronous copy on the current stream; `ready()` waits for it in the writer
thread, and later kernels on that stream are ordered after the copy.
"""

from __future__ import annotations

import collections
import copy
from typing import Any

import torch

StatePath = tuple[Any, ...]


class Snapshotter:
    """Copies nested state (dicts, lists, tuples, tensors, plain values) into reused buffers.

    A snapshot's buffers are overwritten by the next `take()`; the caller must be
    done writing one snapshot before taking the next.
    """

    def __init__(self) -> None:
        self._buffers: dict[StatePath, torch.Tensor] = {}
        self._seen: set[StatePath] = set()
        self._cuda_event: Any = None
        self._any_cuda = False

    def take(self, state: Any) -> Any:
        self._seen = set()
        self._cuda_event = None
        self._any_cuda = False
        snapshot = self._copy(state, ())
        if self._any_cuda:
            self._cuda_event = torch.cuda.Event()
            self._cuda_event.record()
        for stale in self._buffers.keys() - self._seen:
            del self._buffers[stale]  # shapes that left the state free their memory
        return snapshot

    def ready(self) -> None:
        """Block until asynchronous device-to-host copies of the last snapshot are done."""
        if self._cuda_event is not None:
            self._cuda_event.synchronize()

    def release(self) -> None:
        """Give the buffers' memory back (the next save allocates again)."""
        self._buffers.clear()

    def _copy(self, obj: Any, path: StatePath) -> Any:
        if isinstance(obj, torch.Tensor):
            return self._copy_tensor(obj, path)
        if isinstance(obj, collections.OrderedDict):
            return collections.OrderedDict((k, self._copy(v, (*path, k))) for k, v in obj.items())
        if type(obj) is dict:
            return {k: self._copy(v, (*path, k)) for k, v in obj.items()}
        if type(obj) in (list, tuple):
            return type(obj)(self._copy(v, (*path, i)) for i, v in enumerate(obj))
        if obj is None or isinstance(obj, int | float | str | bytes | bool | torch.dtype):
            return obj
        return copy.deepcopy(obj)

    def _copy_tensor(self, t: torch.Tensor, path: StatePath) -> torch.Tensor:
        t = t.detach()
        if t.layout != torch.strided or t.is_quantized or t.device.type not in ("cpu", "cuda"):
            return t.clone().cpu()
        self._seen.add(path)
        buf = self._buffers.get(path)
        if buf is None or buf.shape != t.shape or buf.dtype != t.dtype:
            # Contiguous even for a strided view: an expanded view's overlapping strides
            # cannot be written into, and the values are what a checkpoint keeps.
            buf = torch.empty(t.shape, dtype=t.dtype, pin_memory=t.is_cuda)
            self._buffers[path] = buf
        buf.copy_(t, non_blocking=t.is_cuda)
        self._any_cuda = self._any_cuda or t.is_cuda
        return buf
