"""Bearer tokens: 256 random bits, shown once, stored only as a SHA-256 digest.

A token reads `ty<kind>_<id>_<secret>`: `u` for a user's or service account's token, `r` for a
rank's. The id names the token in lists and revocations without revealing it; the digest is of
the whole string. A fast digest is right here: nothing about a random 256-bit secret can be
guessed, so a slow password hash would add latency to every request and no safety.
"""

from __future__ import annotations

import hashlib
import secrets

USER_PREFIX = "tyu_"
RANK_PREFIX = "tyr_"
MAX_LENGTH = 128  # longer Authorization values are refused unread


def new_token(prefix: str = USER_PREFIX) -> tuple[str, str]:
    """A fresh token and its id."""
    token_id = secrets.token_hex(6)
    return f"{prefix}{token_id}_{secrets.token_urlsafe(32)}", token_id


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
