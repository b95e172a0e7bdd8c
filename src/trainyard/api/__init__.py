"""The HTTP api: the platform it serves, an app factory and one router per resource."""

from trainyard.api.app import create_app
from trainyard.api.platform import Platform

__all__ = ["Platform", "create_app"]
