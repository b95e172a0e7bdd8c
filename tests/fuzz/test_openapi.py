"""schemathesis against the whole OpenAPI of a real, seeded server: no 5xx, every answer as declared.

Each operation gets TRAINYARD_FUZZ_EXAMPLES generated requests (25 by default, so it runs in a
few minutes inside `make test`; `make fuzz` asks for many more), on top of schemathesis's
coverage cases (boundaries, wrong types, missing fields). Generation is derandomized, so CI
sees the same requests on every run. Path and query parameters that name objects draw from the
seeded ids half the time, so routes like /v1/runs/{run_id} reach real runs, not only 404s.

Only 127.0.0.1 is ever sent to: the server is started there, redirects are not followed, and
each request's URL is checked. At the end, `fuzz: {...}` prints one JSON line (operations,
requests, 5xx, responses a check refused). The long run: `make fuzz` (FUZZ_EXAMPLES=500).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from tests.fuzz.conftest import TALLY, Seeded

pytestmark = pytest.mark.slow  # a seeded server runs real jobs

EXAMPLES = int(os.environ.get("TRAINYARD_FUZZ_EXAMPLES", "25"))
CHECKS = [not_a_server_error, schemathesis.checks.response_schema_conformance]
SEEDED_SHARE = 0.5  # how often a parameter that names an object takes a seeded id

# parameter name -> the seeded ids it draws from (keys of Seeded.ids)
BINDINGS = {
    "run_id": "run_ids", "job_id": "run_ids", "sweep_id": "sweep_ids", "name": "names",
    "which": "versions", "version": "versions", "alias": "aliases", "attempt": "attempts",
    "step": "steps", "key": "metric_keys", "path": "artifact_paths", "sha256": "sha256s",
}


# The metric routes take MessagePack as well as JSON; the OpenAPI declares it as bytes, so send bytes.
schemathesis.serializer.alias("application/msgpack", "application/octet-stream")


def _config(seeded: Seeded) -> schemathesis.Config:
    return schemathesis.Config.from_dict({
        "base-url": seeded.server.url,
        "request-timeout": 60,
        "dictionaries": {name: {"values": values} for name, values in seeded.ids.items()},
        "parameters": {param: {"dictionary": ids, "probability": SEEDED_SHARE}
                       for param, ids in BINDINGS.items()},
        "generation": {"max-examples": EXAMPLES, "deterministic": True, "database": "none"},
    })


@pytest.fixture(scope="module")
def api_schema(seeded: Seeded) -> Iterator[schemathesis.BaseSchema]:
    assert urlsplit(seeded.server.url).hostname == "127.0.0.1"
    TALLY.examples, TALLY.started = EXAMPLES, time.monotonic()
    yield schemathesis.openapi.from_url(f"{seeded.server.url}/openapi.json", config=_config(seeded))


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture(autouse=True)
def _legacy_node_id(request: pytest.FixtureRequest) -> None:
    """schemathesis 4's lazy schemas read `node._nodeid`, which pytest 9.2 no longer has."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


@pytest.mark.timeout(600 + 60 * EXAMPLES)  # one test item runs every operation
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@schema.parametrize()
def test_every_operation_answers_without_a_server_error_and_as_its_schema_declares(
        case: schemathesis.Case, seeded: Seeded) -> None:
    response = case.call(base_url=seeded.server.url, headers=seeded.server.auth, allow_redirects=False, timeout=60)
    assert urlsplit(response.request.url).hostname == "127.0.0.1"
    TALLY.requests += 1
    TALLY.operations.add(case.operation.label)
    if response.status_code >= 500:
        TALLY.server_errors[case.operation.label] += 1
    try:
        case.validate_response(response, checks=CHECKS)
    except Exception:
        TALLY.failing[case.operation.label] += 1
        raise
