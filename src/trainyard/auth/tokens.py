"""Bearer tokens: 256 random bits, shown once, stored only as a SHA-256 digest.

A token reads `ty<kind>_<id>_<secret>`: `u` for a user's or service account's token, `r` for a
rank's. The id names the token in lists and revocations without revealing it; the digest is of
the whole string. A fast digest is right here: nothing about a random 256-bit secret can be
guessed, so a slow password hash would add latency to every request and no safety.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta

USER_PREFIX = "tyu_"
RANK_PREFIX = "tyr_"
MAX_LENGTH = 128  # longer Authorization values are refused unread
MAX_LIFETIME = timedelta(days=365)  # every token a person makes expires: a lost one dies on its own
DEFAULT_LIFETIME = "90d"
LIFETIME_PATTERN = r"^[1-9][0-9]{0,5}[mhd]$"
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def new_token(prefix: str = USER_PREFIX) -> tuple[str, str]:
    """A fresh token and its id."""
    token_id = secrets.token_hex(6)
    return f"{prefix}{token_id}_{secrets.token_urlsafe(32)}", token_id


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def lifetime(text: str) -> timedelta:
    """`90m`, `12h` or `30d` as a duration, at most `MAX_LIFETIME`; ValueError saying what to write."""
    if not re.fullmatch(LIFETIME_PATTERN, text):
        raise ValueError(f"{text!r} is not a lifetime: write a number and a unit, e.g. 90m, 12h or 30d")
    span = timedelta(**{_UNITS[text[-1]]: int(text[:-1])})
    if span > MAX_LIFETIME:
        raise ValueError(f"{text} is longer than a token may live: at most {MAX_LIFETIME.days}d")
    return span
