"""The store: tables, migrations and the queries the api and control loop share."""

from trainyard.store import (
    registry_tables,  # noqa: F401 - datasets', lineage's and models' tables join Base.metadata
    sweep_tables,  # noqa: F401 - sweeps' tables join Base.metadata
)
from trainyard.store.db import Store

__all__ = ["Store"]
