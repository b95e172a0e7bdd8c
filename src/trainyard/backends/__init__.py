"""Where gangs run: one small interface and its implementations."""

from trainyard.backends.base import Backend, Capacity, GangLaunch, Placement, RankStatus
from trainyard.backends.local import LocalBackend

__all__ = ["Backend", "Capacity", "GangLaunch", "LocalBackend", "Placement", "RankStatus"]
