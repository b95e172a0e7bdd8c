"""The `yard` command."""
