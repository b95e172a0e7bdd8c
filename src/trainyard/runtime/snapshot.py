"""A fast in-memory copy of training state, so the loop can go on while it is written.

Tensors are copied into buffers kept from the previous save: after the first
save the copy is a memcpy into memory already faulted in, no allocation
(see benchmarks/checkpoint_save.py for why this beats a fresh clone and a
copy-on-write fork). CUDA tensors go to pinned host buffers with an
asynchronous copy on the current stream; `ready()` waits for it in the writer
thread, and later kernels on that stream are ordered after the copy.

Overlapped snapshots (`take(state, overlap=True)`, opt-in through
`ctx.checkpoint.save(..., overlap=True)`): plain values, CUDA tensors (already
asynchronous) and CPU tensors under `small_bytes` are copied before `take()`
returns; larger CPU tensors are copied by a background thread while the loop
runs its next forward/backward. A global optimizer step pre-hook makes every
`optimizer.step()` (any torch.optim.Optimizer) wait until that copy is done, so
the optimizer never tears a snapshot. What it does NOT protect — and why it is
opt-in: a large CPU tensor in the state that changes between `take()` and the
next `optimizer.step()` by any other means lands in the checkpoint with its new
(or half-new) values. For example: BatchNorm running statistics above
`small_bytes` (updated by the forward pass), EMA / SWA weights updated before
the step, a GradScaler or LR schedule kept as a large tensor, manual in-place
edits (`p.data.mul_()`, weight clipping, pruning masks), an optimizer that is
not a torch.optim.Optimizer (no hooks run), or a loop that never steps an
optimizer before the tensors change. Tensors are only read, never locked.
"""

from __future__ import annotations

import collections
import copy
import threading
import time
from typing import Any

import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

StatePath = tuple[Any, ...]
SMALL_BYTES = 1 << 20  # overlapped snapshots copy CPU tensors under 1 MiB before returning


class Snapshotter:
    """Copies nested state (dicts, lists, tuples, tensors, plain values) into reused buffers.

    A snapshot's buffers are overwritten by the next `take()`; the caller must be
    done writing one snapshot before taking the next.
    """

    def __init__(self, small_bytes: int = SMALL_BYTES) -> None:
        self.small_bytes = small_bytes
        self._buffers: dict[StatePath, torch.Tensor] = {}
        self._seen: set[StatePath] = set()
        self._cuda_event: Any = None
        self._any_cuda = False
        self._deferred: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        self._copied = threading.Event()
        self._copied.set()
        self._copy_error: BaseException | None = None
        self._hook: Any = None
        self.step_wait_s = 0.0  # total time optimizer steps have waited for overlapped copies

    def take(self, state: Any, overlap: bool = False) -> Any:
        """Copy `state` into the buffers; with `overlap`, large CPU tensors are copied in the
        background and the next optimizer.step() waits for them (see the module's notes)."""
        self._wait_copied()  # the buffers may still be filling from the last overlapped take
        self._seen = set()
        self._cuda_event = None
        self._any_cuda = False
        self._deferred = [] if overlap else None
        snapshot = self._copy(state, ())
        if self._any_cuda:
            self._cuda_event = torch.cuda.Event()
            self._cuda_event.record()
        for stale in self._buffers.keys() - self._seen:
            del self._buffers[stale]  # shapes that left the state free their memory
        deferred, self._deferred = self._deferred, None
        if deferred:
            self._start_copy(deferred)
        return snapshot

    def ready(self) -> None:
        """Block until every copy of the last snapshot is done; raises if a background copy failed."""
        self._wait_copied()
        if self._cuda_event is not None:
            self._cuda_event.synchronize()
        if self._copy_error is not None:
            error, self._copy_error = self._copy_error, None
            raise RuntimeError("the overlapped snapshot copy failed") from error

    def release(self) -> None:
        """Give the buffers' memory back (the next save allocates again) and drop the step hook."""
        self._wait_copied()
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        self._buffers.clear()

    def _start_copy(self, pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        if self._hook is None:
            self._hook = register_optimizer_step_pre_hook(self._before_step)
        self._copied.clear()
        threading.Thread(
            target=self._copy_in_background, args=(pairs,), name="trainyard-snapshot", daemon=True
        ).start()

    def _copy_in_background(self, pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        try:
            for buf, src in pairs:
                buf.copy_(src)  # releases the GIL: the loop's forward/backward runs meanwhile
        except BaseException as exc:  # reported by ready(), in the writer thread
            self._copy_error = exc
        finally:
            self._copied.set()

    def _before_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if not self._copied.is_set():
            start = time.perf_counter()
            self._copied.wait()
            self.step_wait_s += time.perf_counter() - start

    def _wait_copied(self) -> None:
        self._copied.wait()

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
        if self._deferred is not None and not t.is_cuda and buf.nbytes >= self.small_bytes:
            self._deferred.append((buf, t))
            return buf
        buf.copy_(t, non_blocking=t.is_cuda)
        self._any_cuda = self._any_cuda or t.is_cuda
        return buf
