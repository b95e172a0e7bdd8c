"""The HTTP api: an app factory and one router per resource."""

from trainyard.api.app import create_app

__all__ = ["create_app"]
