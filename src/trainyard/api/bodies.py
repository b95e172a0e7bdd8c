"""Large JSON bodies decoded and validated in a worker thread, in pieces, not on the event loop.

FastAPI decodes and validates a body parameter on the event loop: for a dataset manifest of up to
32 MiB (~230,000 files) that is half a second or more in which no other request is answered. A
route takes such a body as a dependency instead, `body: Model = Depends(json_body)` with
`openapi_extra=json_body.openapi, responses=json_body.responses`, and the OpenAPI declares it as
FastAPI would have. A refusal is the usual 422, its fields named as FastAPI would name them.

A thread alone is not enough: pydantic validates a whole model in one call that keeps the GIL
(the event loop waited out all of it, measured), so the long list of a body (`items`) is validated
a thousand entries per call, and the loop gets the GIL back between them.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Generic, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from trainyard.api.errors import REFUSED, Refusal

M = TypeVar("M", bound=BaseModel)
_COMPONENTS = "#/components/schemas/{model}"
_PIECE = 1000  # list entries validated per call: a few milliseconds


class JsonBody(Generic[M]):
    """A dependency: the request's JSON body as a `model`, read whole, then decoded and validated in a thread."""

    models: ClassVar[dict[str, type[BaseModel]]] = {}  # every JsonBody's, by the name the OpenAPI gives it

    def __init__(self, model: type[M], items: str | None = None):
        self.model = model
        self.items = items  # the field holding a long list, validated in pieces
        self._entries = TypeAdapter(model.model_fields[items].annotation) if items else None
        JsonBody.models[model.__name__] = model
        ref = {"$ref": _COMPONENTS.format(model=model.__name__)}
        self.openapi: dict[str, Any] = {"requestBody": {"required": True,
                                                        "content": {"application/json": {"schema": ref}}}}
        self.responses: dict[int | str, dict[str, Any]] = {422: {"model": Refusal, "description": REFUSED}}

    async def __call__(self, request: Request) -> M:
        return await run_in_threadpool(self.parse, await request.body())

    def parse(self, raw: bytes) -> M:
        try:
            data = json.loads(raw)  # one call, but ~0.1 s for 32 MiB, where validating is most of a second
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RequestValidationError([{"type": "json_invalid", "loc": (), "msg": f"Invalid JSON: {exc}",
                                           "input": None}]) from None
        errors: list[Any] = []
        if self.items and isinstance(data, dict) and isinstance(data.get(self.items), list):
            data[self.items], errors = self._validate_items(data[self.items])
        try:
            body = self.model.model_validate(data)  # the entries already validated pass as they are
        except ValidationError as exc:
            errors = [*exc.errors(include_url=False), *errors]
        if errors:
            raise RequestValidationError(errors)
        return body

    def _validate_items(self, items: list[Any]) -> tuple[list[Any], list[Any]]:
        assert self._entries is not None
        valid: list[Any] = []
        errors: list[Any] = []
        for start in range(0, len(items), _PIECE):
            try:
                valid += self._entries.validate_python(items[start:start + _PIECE])
            except ValidationError as exc:
                errors += [{**e, "loc": (self.items, start + e["loc"][0], *e["loc"][1:])}
                           for e in exc.errors(include_url=False)]
        return (valid if not errors else []), errors


def install(app: FastAPI) -> None:
    """Declare each JsonBody's model among the OpenAPI's schemas, where its routes' requestBody points."""
    generate = app.openapi
    declared = False

    def openapi() -> dict[str, Any]:
        nonlocal declared
        schema = generate()  # made once, then the same document
        if not declared:
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for name, model in JsonBody.models.items():
                doc = model.model_json_schema(ref_template=_COMPONENTS)
                for sub_name, sub in doc.pop("$defs", {}).items():
                    components.setdefault(sub_name, sub)
                components.setdefault(name, doc)
            declared = True
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

