"""trainyard: a self-hosted ML training platform.

In a training script: `ctx = trainyard.init()` (see `trainyard.runtime`).
The runtime, and torch with it, is imported only when first used, so the
server and the CLI can `import trainyard` without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainyard.runtime import Context, init

__all__ = ["Context", "init"]


def __getattr__(name: str) -> Any:
    if name in ("init", "Context"):
        from trainyard import runtime

        return getattr(runtime, name)
    raise AttributeError(f"module 'trainyard' has no attribute {name!r}")
