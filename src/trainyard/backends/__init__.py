"""Where gangs run: one small interface and its implementations."""

from trainyard.backends.base import Backend, GangLaunch, RankStatus
from trainyard.backends.local import LocalBackend

__all__ = ["Backend", "GangLaunch", "LocalBackend", "RankStatus"]
