"""The store: tables, migrations and the queries the api and control loop share."""

from trainyard.store.db import Store

__all__ = ["Store"]
