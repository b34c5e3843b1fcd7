"""Publishing: a bearer-token holder uploads a new, immutable version as a tar archive."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import anyio
from fastapi import APIRouter, Query, Request, status
from starlette.concurrency import run_in_threadpool

from edgeft.bundle import Bundle
from edgeft.errors import BundleError
from edgeft.layout import MANIFEST, SIGNATURE
from edgeft.registry.deps import Name, Publisher, Settings, Storage, Version
from edgeft.registry.errors import InvalidRequestError, PayloadTooLargeError, VersionExistsError
from edgeft.registry.paths import safe_extract
from edgeft.registry.schemas import ErrorBody, Publishable, Published
from edgeft.registry.settings import RegistrySettings
from edgeft.registry.storage import BundleStorage

router = APIRouter(prefix="/v1/bundles", tags=["publish"], dependencies=[Publisher])


@router.get(
    "/{name}/versions/{version}/publishable",
    response_model=Publishable,
    summary="Check token, version and size before uploading (a failed upload is otherwise cut off mid-body)",
    responses={code: {"model": ErrorBody} for code in (400, 401, 409, 413)},
)
def publishable(
    name: Name,
    version: Version,
    settings: Settings,
    storage: Storage,
    size: Annotated[int, Query(ge=1, description="the archive's size in bytes")],
) -> Publishable:
    _check_before_upload(name, version, size, settings, storage)
    return Publishable(name=name, version=version, max_upload_bytes=settings.max_upload_bytes)


@router.put(
    "/{name}/versions/{version}",
    status_code=status.HTTP_201_CREATED,
    response_model=Published,
    summary="Publish a new version: the body is a tar archive of the bundle folder",
    responses={code: {"model": ErrorBody} for code in (400, 401, 409, 413)},
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/x-tar": {"schema": {"type": "string", "format": "binary"}}}}
    },
)
async def publish(name: Name, version: Version, request: Request, settings: Settings, storage: Storage) -> Published:
    limit = settings.max_upload_bytes
    declared = request.headers.get("content-length")
    _check_before_upload(name, version, int(declared) if declared and declared.isdigit() else None, settings, storage)
    with tempfile.TemporaryDirectory(prefix=".upload-", dir=_upload_dir(settings)) as tmp:
        archive = Path(tmp) / "upload.tar"
        await _receive(request, archive, limit)
        # Unpacking, hashing and copying take a while: off the event loop, so downloads keep flowing.
        return await run_in_threadpool(_verify_and_publish, archive, name, version, limit, storage)


def _verify_and_publish(archive: Path, name: str, version: str, limit: int, storage: BundleStorage) -> Published:
    staged = archive.parent / "bundle"
    staged.mkdir()
    safe_extract(archive, staged, limit)
    try:
        m = Bundle.load(staged).manifest
    except BundleError as e:
        raise InvalidRequestError(f"The upload is not a valid bundle: {e}") from e
    if (m.name, m.version) != (name, version):
        raise InvalidRequestError(f"The upload's manifest says {m.name}@{m.version}, but it was sent to {name}@{version}.")
    listed = {*m.files, MANIFEST, SIGNATURE}  # the publisher's signature travels beside the manifest it signs
    extra = sorted(rel for p in staged.rglob("*") if p.is_file() and (rel := p.relative_to(staged).as_posix()) not in listed)
    if extra:
        raise InvalidRequestError(f"The upload holds files its manifest does not list: {', '.join(extra)}.")
    storage.publish(name, version, staged)
    return Published(name=name, version=version, files=len(m.files), bytes=sum(e.size for e in m.files.values()))


def _check_before_upload(name: str, version: str, size: int | None, settings: RegistrySettings, storage: BundleStorage) -> None:
    limit = settings.max_upload_bytes
    if size is not None and size > limit:
        raise PayloadTooLargeError(f"The upload is {size} bytes; this registry accepts at most {limit} bytes.")
    if any(v["version"] == version for v in _versions(storage, name)):
        raise VersionExistsError(f"{name}@{version} is already published; versions are immutable. Publish a new version.")


def _upload_dir(settings: RegistrySettings) -> Path:
    """Uploads are staged under the registry root, on the same disk as the bundles."""
    folder = settings.root / ".uploads"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _versions(storage: BundleStorage, name: str) -> list[dict[str, str]]:
    return storage.versions(name) if name in storage.names() else []


async def _receive(request: Request, into: Path, limit: int) -> None:
    received = 0
    async with await anyio.open_file(into, "wb") as f:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise PayloadTooLargeError(f"The upload exceeds this registry's limit of {limit} bytes.")
            await f.write(chunk)
    if received == 0:
        raise InvalidRequestError("The upload is empty: send the bundle folder as a tar archive.")
