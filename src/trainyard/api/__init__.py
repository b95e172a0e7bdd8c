"""The HTTP api: the platform it serves, an app factory and one router per resource."""

from trainyard.api.app import create_app
from trainyard.api.platform import Platform
from trainyard.auth.secrets import SecretsKeyError

__all__ = ["Platform", "SecretsKeyError", "create_app"]
