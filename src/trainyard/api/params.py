"""Path and query parameters that several routers share, each bounded to what the store holds, so
an out-of-range number is a 422 naming the parameter, never an overflow in the database."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from trainyard.spec import INT32_MAX, INT64_MAX

AttemptNumber = Annotated[int, Path(ge=1, le=INT32_MAX, description="The attempt: the rank's fencing token.")]
CheckpointStep = Annotated[int, Path(ge=0, le=INT64_MAX, description="The checkpoint's step.")]
