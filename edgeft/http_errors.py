"""The ``{error, detail, fields}`` body of every HTTP error, and the handlers that answer with it.

Both HTTP services (the registry and the on-device service) answer every error in this one shape
(:class:`ErrorBody`), through the handlers :func:`install` adds: edgeft's errors with the status each app
gives them, a request that fails validation as 422 naming its fields, and the errors Starlette and FastAPI
raise before a route runs (unknown path, wrong method, a body it cannot parse).
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from edgeft.errors import EdgeftError


class ErrorBody(BaseModel):
    """Every error: the error's class, a sentence saying why, and for 422 the fields at fault."""

    error: str
    detail: str
    fields: list[dict[str, str]] | None = None


def install(app: FastAPI, status: Callable[[Exception], int]) -> None:
    """Answer every error of ``app`` as an :class:`ErrorBody`; ``status`` gives an edgeft error's HTTP status."""
    app.add_exception_handler(EdgeftError, lambda request, exc: error_response(exc, status(exc)))
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)  # 404, 405, unparsable bodies
    app.add_exception_handler(Exception, internal_error)


def error_response(exc: Exception, status: int) -> JSONResponse:
    """``exc`` as an :class:`ErrorBody` with ``status``; an error that names its field (``field``, ``message``) lists it."""
    body: dict[str, object] = {"error": type(exc).__name__, "detail": str(exc)}
    if isinstance(getattr(exc, "field", None), str):
        body["fields"] = [{"field": exc.field, "message": exc.message}]  # type: ignore[attr-defined]
    headers = {"www-authenticate": "Bearer"} if status == 401 else None  # how to authenticate (RFC 9110)
    return JSONResponse(body, status_code=status, headers=headers)


def validation_error(request: Request, exc: Exception) -> JSONResponse:
    """A request the schemas refuse: 422, each field at fault with pydantic's message."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    fields = [{"field": _field(e), "message": e["msg"]} for e in errors]
    detail = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
    return JSONResponse({"error": "ValidationError", "detail": detail, "fields": fields}, status_code=422)


def _field(error: dict) -> str:
    """Where a validation error lies, as a dotted path in the body or query ("examples.0.label"); "body" for the whole body."""
    if error.get("type") == "json_invalid":  # its location is a character offset, not a field
        return "body"
    return ".".join(str(p) for p in error["loc"][1:] if p != "body") or "body"


_NAMES = {400: "BadRequest", 404: "NotFound", 405: "MethodNotAllowed", 413: "PayloadTooLarge", 415: "UnsupportedMediaType"}
_DETAILS = {
    400: "The request body could not be parsed: send JSON (nested at most a few hundred levels deep).",
    404: "No such endpoint; see /docs for the API.",
}


def http_error(request: Request, exc: Exception) -> JSONResponse:
    """Answer a framework ``HTTPException`` with ``{"error": ..., "detail": ...}`` and its status and headers."""
    code = exc.status_code if isinstance(exc, HTTPException) else 500
    generic = not isinstance(exc, HTTPException) or exc.detail in (None, "Not Found", "There was an error parsing the body")
    detail = _DETAILS.get(code, str(getattr(exc, "detail", ""))) if generic else str(exc.detail)
    if code == 405:
        detail = (
            f"{request.method} is not allowed on {request.url.path}; allowed: {getattr(exc, 'headers', {}).get('Allow', '?')}."
        )
    headers = getattr(exc, "headers", None)
    return JSONResponse({"error": _NAMES.get(code, "HTTPError"), "detail": detail}, status_code=code, headers=headers)


def internal_error(request: Request, exc: Exception) -> JSONResponse:
    """A bug's answer: still the documented shape (the traceback goes to the server's log, not to the client)."""
    return JSONResponse(
        {
            "error": "InternalError",
            "detail": f"The server failed on this request ({type(exc).__name__}); see its log. This is a bug: please report it.",
        },
        status_code=500,
    )
