"""The registry's FastAPI application: routers, one error handler, the storage."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from edgeft import __version__
from edgeft.errors import EdgeftError
from edgeft.http_errors import http_error, internal_error
from edgeft.registry.errors import RegistryError
from edgeft.registry.routers import bundles, publish
from edgeft.registry.settings import RegistrySettings
from edgeft.registry.storage import BundleStorage, LocalStorage


def create_app(settings: RegistrySettings, storage: BundleStorage | None = None) -> FastAPI:
    """The registry app for ``settings``; ``storage`` defaults to :class:`LocalStorage` at ``settings.root``."""
    app = FastAPI(
        title="edgeft bundle registry",
        version=__version__,
        description="Publish bundles from the workstation; devices list, read manifests and download files.",
    )
    app.state.settings = settings
    app.state.storage = storage or LocalStorage(settings.root)
    app.include_router(bundles.router)
    app.include_router(publish.router)
    app.add_exception_handler(EdgeftError, _edgeft_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, http_error)  # 404, 405, unparsable bodies: the same {error, detail}
    app.add_exception_handler(Exception, internal_error)

    @app.get("/healthz", tags=["health"], summary="Liveness")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def _edgeft_error(request: Request, exc: Exception) -> JSONResponse:
    """Map the error hierarchy to HTTP: registry errors carry their status; a bad bundle is a 400."""
    code = exc.status if isinstance(exc, RegistryError) else 400
    headers = {"www-authenticate": "Bearer"} if code == 401 else None
    return JSONResponse({"error": type(exc).__name__, "detail": str(exc)}, status_code=code, headers=headers)


def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    fields = [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in errors]
    detail = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
    return JSONResponse({"error": "ValidationError", "detail": detail, "fields": fields}, status_code=422)
