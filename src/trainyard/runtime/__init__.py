"""Code that runs inside a worker rank: `ctx = trainyard.init()`.

Imports only `trainyard.spec` and `trainyard.client` of ours: ranks run on
hosts that have no server.
"""

from trainyard.runtime.checkpoint import Checkpointer
from trainyard.runtime.context import Context, init
from trainyard.runtime.metrics import MetricShipper

__all__ = ["Checkpointer", "Context", "MetricShipper", "init"]
