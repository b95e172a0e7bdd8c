"""The store: tables, migrations and the queries the api and control loop share."""

from trainyard.store import (  # noqa: F401 - every table joins Base.metadata before any session opens
    audit_tables,
    auth_tables,
    registry_tables,
    secret_tables,
    sweep_tables,
    tables,
    tracking_tables,
)
from trainyard.store.db import Store

__all__ = ["Store"]
