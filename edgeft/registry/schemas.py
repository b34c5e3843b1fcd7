"""Response bodies of the registry's API."""

from __future__ import annotations

from pydantic import BaseModel

from edgeft import http_errors


class VersionInfo(BaseModel):
    version: str
    published: str  # ISO 8601, UTC


class BundleSummary(BaseModel):
    name: str
    latest: str | None
    versions: list[VersionInfo]


class BundleList(BaseModel):
    bundles: list[BundleSummary]


class Published(BaseModel):
    name: str
    version: str
    files: int
    bytes: int


class Publishable(BaseModel):
    name: str
    version: str
    max_upload_bytes: int


ErrorBody = http_errors.ErrorBody  # one error shape for both apps
