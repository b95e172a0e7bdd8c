"""Dataset snapshots: content-addressed manifests, and verified read-only local copies for ranks."""
