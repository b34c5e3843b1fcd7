"""The registry's FastAPI application: routers, one error handler, the storage."""

from __future__ import annotations

from fastapi import FastAPI

from edgeft import __version__
from edgeft.http_errors import install
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
    install(app, _status)

    @app.get("/healthz", tags=["health"], summary="Liveness")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def _status(exc: Exception) -> int:
    """Registry errors carry their status; a bad bundle is a 400."""
    return exc.status if isinstance(exc, RegistryError) else 400
