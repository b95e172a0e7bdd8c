"""Tracking: runs, metric ingestion and queries, search, artifacts."""
