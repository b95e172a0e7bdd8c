"""Errors as JSON a person can act on: a refusal (422) is `{"errors": [{"field", "message"}]}`,
anything else `{"detail"}`. The OpenAPI says so too, in place of FastAPI's own 422 shape."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from trainyard.principal import Forbidden
from trainyard.spec import SpecError
from trainyard.store.repo import Conflict, NotFound


class FieldError(BaseModel):
    field: str = Field(description="The field refused, as a dotted path (points.3.value); (body) for the whole.")
    message: str = Field(description="What is wrong with it and what would be accepted.")


class Refusal(BaseModel):
    """The request was refused as it is: each field that is wrong and what to do."""

    errors: list[FieldError]


_FASTAPI_422 = "#/components/schemas/HTTPValidationError"
REFUSED = "Refused: each field that is wrong and what to do."


def _field(loc: tuple) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "(body)"


def refusal(errors: list[dict[str, str]]) -> JSONResponse:
    return JSONResponse({"errors": errors}, status_code=422)


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return refusal([{"field": _field(e["loc"]), "message": e["msg"]} for e in exc.errors()])

    @app.exception_handler(SpecError)
    async def _bad_spec(_: Request, exc: SpecError) -> JSONResponse:
        return refusal(exc.errors)

    @app.exception_handler(NotFound)
    async def _missing(_: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(Forbidden)  # seen, but not the caller's to change: what role it takes
    async def _forbidden(_: Request, exc: Forbidden) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=403)

    @app.exception_handler(Conflict)  # a stale attempt's write, a write to a finished run, ...
    async def _conflict(_: Request, exc: Conflict) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 422:  # one refusal shape, whoever raised it
            detail = exc.detail
            if isinstance(detail, dict) and isinstance(detail.get("errors"), list):
                return refusal(detail["errors"])
            return refusal([{"field": "(body)", "message": str(detail)}])
        return await http_exception_handler(request, exc)

    @app.exception_handler(IntegrityError)
    async def _integrity(_: Request, exc: IntegrityError) -> JSONResponse:
        # a race the code did not serialise: the losing write is refused whole, never a 500
        return JSONResponse({"detail": "this write conflicts with one made at the same time (or with an "
                                       "object that already exists); nothing was written: read the "
                                       "object again and retry"}, status_code=409)

    @app.exception_handler(OperationalError)
    async def _busy(_: Request, exc: OperationalError) -> JSONResponse:
        if "database is locked" not in str(exc.orig):
            raise exc
        return JSONResponse({"detail": "the database stayed busy past its timeout; nothing was written: "
                                       "retry shortly"}, status_code=503, headers={"Retry-After": "1"})

    _declare_refusals(app)


def _declare_refusals(app: FastAPI) -> None:
    """Point every declared 422 at the Refusal shape the handlers above send."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.pop("HTTPValidationError", None)
            components.pop("ValidationError", None)
            doc = Refusal.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(doc.pop("$defs", {}))
            components["Refusal"] = doc
            for operation in (op for item in schema.get("paths", {}).values() for op in item.values()):
                declared = operation.get("responses", {}).get("422")
                if declared and _refers_to(declared, _FASTAPI_422):
                    operation["responses"]["422"] = {
                        "description": REFUSED,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Refusal"}}},
                    }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _refers_to(node: Any, ref: str) -> bool:
    if isinstance(node, dict):
        return node.get("$ref") == ref or any(_refers_to(v, ref) for v in node.values())
    return isinstance(node, list) and any(_refers_to(v, ref) for v in node)

