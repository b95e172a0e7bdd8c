"""trainyard."""
