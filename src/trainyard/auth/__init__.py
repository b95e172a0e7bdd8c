"""Identity, tokens, roles, secrets and audit: who may do what, to which team's objects."""
