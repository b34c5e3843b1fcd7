"""Response bodies of the registry's API."""

from __future__ import annotations

from pydantic import BaseModel


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


class ErrorBody(BaseModel):
    """What every error answers: the error's class and a sentence saying why."""

    error: str
    detail: str
