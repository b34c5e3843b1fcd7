"""The ``{error, detail}`` body for errors the web framework raises itself (unknown path, wrong method, a body it cannot parse).

Both HTTP services (the registry and the on-device service) answer every error
in this one shape; their own errors are mapped by their own handlers, these
are the ones Starlette and FastAPI raise before a route runs.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

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
