"""The model registry: models, numbered versions from runs' checkpoints, aliases, evaluation gates.

Kept import-light: retention (control/) reads `registry.pins`, and the
evaluation driver (`registry.gates`) submits jobs through control/.
"""
