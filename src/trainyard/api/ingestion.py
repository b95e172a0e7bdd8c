"""The high-volume routes that ranks, runs and dataset uploads write through.

They carry no audit row and no write rate limit, so that a fast job never throttles itself
and the audit log holds what people did, not every metric batch:
- an attempt's routes (heartbeats, metric batches, events, checkpoint commits): fenced by the
  attempt's own credential and recorded as the job's events;
- `POST /v1/runs/{id}/metrics`: a run's metric batches;
- dataset contents: `PUT /v1/dataset-blobs/{sha256}` stores bytes under their digest, which
  are nobody's until `POST /v1/datasets` (audited, limited) makes a snapshot of them, and
  `POST /v1/dataset-blobs/missing` only asks which digests are stored.

Matched on the request's path (as api/limits.py's body limits are), so that a request refused
before it is routed is classified the same as one that is routed.
"""

from __future__ import annotations

import re

READS = frozenset({"GET", "HEAD", "OPTIONS"})

_INGESTION = (
    (None, re.compile(r"/v1/training-jobs/[^/]+/attempts/[^/]+/.+")),
    ("POST", re.compile(r"/v1/runs/[^/]+/metrics")),
    ("PUT", re.compile(r"/v1/dataset-blobs/[^/]+")),
    ("POST", re.compile(r"/v1/dataset-blobs/missing")),
)


def is_ingestion(method: str, path: str) -> bool:
    return any((m is None or m == method) and pattern.fullmatch(path) for m, pattern in _INGESTION)


def is_audited_write(method: str, path: str) -> bool:
    """A call that may change state and is not ingestion: audited and rate-limited."""
    return method not in READS and not is_ingestion(method, path)
