"""Dependencies of the registry's routes: settings, storage, tokens, validated names."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Path, Request

from edgeft.registry.errors import UnauthorizedError
from edgeft.registry.paths import check_name
from edgeft.registry.settings import RegistrySettings
from edgeft.registry.storage import BundleStorage


def get_settings(request: Request) -> RegistrySettings:
    return request.app.state.settings


def get_storage(request: Request) -> BundleStorage:
    return request.app.state.storage


def _token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _matches(given: str | None, expected: str | None) -> bool:
    return given is not None and expected is not None and hmac.compare_digest(given.encode(), expected.encode())


def require_reader(request: Request, settings: Annotated[RegistrySettings, Depends(get_settings)]) -> None:
    """Reading is open unless a read token is configured; the publish token also reads."""
    if settings.read_token is None:
        return
    token = _token(request)
    if not (_matches(token, settings.read_token) or _matches(token, settings.publish_token)):
        raise UnauthorizedError("This registry requires a bearer token to read: send 'Authorization: Bearer <token>'.")


def require_publisher(request: Request, settings: Annotated[RegistrySettings, Depends(get_settings)]) -> None:
    """Publishing always needs the publish token."""
    if settings.publish_token is None:
        raise UnauthorizedError(
            "This registry has no publish token configured (EDGEFT_REGISTRY_TOKEN); it refuses every publish."
        )
    if not _matches(_token(request), settings.publish_token):
        raise UnauthorizedError("Publishing requires the registry's bearer token: send 'Authorization: Bearer <token>'.")


def bundle_name(name: Annotated[str, Path(description="bundle name")]) -> str:
    return check_name(name)


def bundle_version(version: Annotated[str, Path(description="bundle version")]) -> str:
    return check_name(version, "version")


Settings = Annotated[RegistrySettings, Depends(get_settings)]
Storage = Annotated[BundleStorage, Depends(get_storage)]
Name = Annotated[str, Depends(bundle_name)]
Version = Annotated[str, Depends(bundle_version)]
Reader = Depends(require_reader)
Publisher = Depends(require_publisher)
