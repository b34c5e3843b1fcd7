"""Reading: list bundles and versions, read a manifest, download files (HTTP Range)."""

from __future__ import annotations

import json
import re

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from edgeft.layout import MANIFEST, SIGNATURE
from edgeft.registry.deps import Name, Reader, Storage, Version
from edgeft.registry.errors import InvalidRequestError, NotFoundError, RangeNotSatisfiableError
from edgeft.registry.paths import check_relative_path
from edgeft.registry.schemas import BundleList, BundleSummary, ErrorBody, VersionInfo

router = APIRouter(
    prefix="/v1/bundles",
    tags=["bundles"],
    dependencies=[Reader],
    responses={401: {"model": ErrorBody}, 404: {"model": ErrorBody}},
)

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@router.get("", response_model=BundleList, summary="Every bundle with its versions")
def list_bundles(storage: Storage) -> BundleList:
    return BundleList(bundles=[_summary(storage, name) for name in storage.names()])


@router.get("/{name}", response_model=BundleSummary, summary="One bundle's versions, oldest first")
def get_bundle(name: Name, storage: Storage) -> BundleSummary:
    return _summary(storage, name)


@router.get("/{name}/versions/{version}/manifest", summary="The manifest exactly as published")
def get_manifest(name: Name, version: Version, storage: Storage) -> Response:
    return Response(storage.manifest(name, version), media_type="application/json")


@router.get(
    "/{name}/versions/{version}/files/{path:path}",
    summary="Download one file; supports a single HTTP Range",
    responses={206: {"description": "the requested range"}, 416: {"model": ErrorBody}},
)
def get_file(name: Name, version: Version, path: str, request: Request, storage: Storage) -> Response:
    check_relative_path(path)
    if path not in (MANIFEST, SIGNATURE) and path not in json.loads(storage.manifest(name, version)).get("files", {}):
        raise NotFoundError(f"{name}@{version} lists no file {path!r} in its manifest.")
    size = storage.size(name, version, path)
    headers = {"accept-ranges": "bytes"}
    start, end = _parse_range(request.headers.get("range"), size)
    if start is None:
        headers["content-length"] = str(size)
        return StreamingResponse(storage.read(name, version, path), media_type="application/octet-stream", headers=headers)
    headers |= {"content-range": f"bytes {start}-{end}/{size}", "content-length": str(end - start + 1)}
    return StreamingResponse(
        storage.read(name, version, path, start, end), status_code=206, media_type="application/octet-stream", headers=headers
    )


def _parse_range(header: str | None, size: int) -> tuple[int | None, int]:
    """(start, end) of a single ``bytes=`` range, or (None, size - 1) for the whole file."""
    if not header:
        return None, size - 1
    match = _RANGE.match(header.strip())
    if not match or match.groups() == ("", ""):
        raise InvalidRequestError(f"Unsupported Range header {header!r}: send one range, 'bytes=START-' or 'bytes=START-END'.")
    first, last = match.groups()
    if first == "":  # suffix range: the last N bytes
        start, end = max(size - int(last), 0), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        raise RangeNotSatisfiableError(f"Range {header!r} lies outside the file's {size} bytes.")
    return start, end


def _summary(storage: Storage, name: str) -> BundleSummary:
    versions = [VersionInfo(**v) for v in storage.versions(name)]
    return BundleSummary(name=name, latest=versions[-1].version if versions else None, versions=versions)
