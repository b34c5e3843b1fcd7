"""Push bundles to a registry and pull them onto a device, with the standard library only.

A device installs a pulled bundle under ``INTO/<name>/<version>/`` and points
``INTO/<name>/current.json`` at it. Downloads land in
``INTO/.partial/<name>@<version>/`` first and resume from there with an HTTP
Range request after an interruption; every file is checked against the
manifest's sha256, the whole folder is verified again by :meth:`Bundle.load`,
and only then renamed into place (:func:`edgeft.atomic.atomic_dir`). Older
versions and any personalized heads stay where they are.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock

from edgeft import atomic
from edgeft.bundle import Bundle, file_sha256
from edgeft.errors import BundleError
from edgeft.layout import MANIFEST, SIGNATURE
from edgeft.manifest import Manifest
from edgeft.registry import errors
from edgeft.registry.paths import check_name, check_relative_path
from edgeft.signing import SignatureError, TrustPolicy, check_signature, policy_for
from edgeft.version_order import is_older

CURRENT = "current.json"
PARTIAL = ".partial"
_CHUNK = 1 << 16
_TIMEOUT = 60.0  # seconds without progress before a request gives up

DownloadProgress = Callable[[str, int, int], None]  # (file, bytes so far, file size)


@dataclasses.dataclass(frozen=True)
class PullResult:
    """What a pull did."""

    name: str
    version: str
    path: Path  # the installed bundle folder
    downloaded_bytes: int  # fetched over the network in this call
    resumed: list[str]  # files continued from an earlier, interrupted pull


def push(
    bundle: str | os.PathLike, registry: str, token: str | None, trust: TrustPolicy | str | os.PathLike | None = None
) -> dict[str, Any]:
    """Publish the bundle folder ``bundle`` as a new version on ``registry``.

    Returns:
        The registry's answer: name, version, file count and bytes.

    ``manifest.sig`` travels with the bundle where there is one; with ``trust``, it is checked first.

    Raises:
        BundleError: the bundle does not verify locally.
        RegistryError: the registry refused it (bad token, version exists, too large...).
    """
    loaded = Bundle.load(bundle, trust=trust)
    m = loaded.manifest
    check_name(m.name)
    check_name(m.version, "version")
    with tempfile.TemporaryFile() as archive:
        with tarfile.open(fileobj=archive, mode="w") as tar:
            signed = [SIGNATURE] if (loaded.path / SIGNATURE).is_file() else []
            for name in [MANIFEST, *signed, *m.files]:
                file = loaded.path / check_relative_path(name)
                if file.is_symlink():
                    raise BundleError(f"Bundle file {name} is a symbolic link; a bundle must hold plain files only.")
                tar.add(file, arcname=name, recursive=False)
        size = archive.tell()
        archive.seek(0)
        url = _url(registry, "bundles", m.name, "versions", m.version)
        with _open(f"{url}/publishable?size={size}", token):
            pass  # refusals (token, existing version, size) arrive here, before the body is sent
        headers = {"content-type": "application/x-tar", "content-length": str(size)}
        with _open(url, token, method="PUT", data=archive, headers=headers) as response:
            return json.loads(response.read())


def latest_version(name: str, registry: str, token: str | None = None) -> str:
    """The most recently published version of ``name``."""
    with _open(_url(registry, "bundles", check_name(name)), token) as response:
        latest = json.loads(response.read())["latest"]
    if latest is None:
        raise errors.NotFoundError(f"Bundle {name!r} has no published version.")
    return latest


def pull(
    ref: str,
    registry: str,
    into: str | os.PathLike,
    token: str | None = None,
    progress: DownloadProgress | None = None,
    trust: TrustPolicy | str | os.PathLike | None = None,
) -> PullResult:
    """Download ``NAME[@VERSION]`` from ``registry`` and install it atomically under ``into``.

    Args:
        ref: ``name`` (the latest version) or ``name@version``.
        registry: the registry's base URL, e.g. ``http://127.0.0.1:8700``.
        into: the device's bundle folder.
        token: bearer token, for registries that protect reading.
        progress: called as each file's bytes arrive.
        trust: the device's trust policy (a :class:`~edgeft.signing.TrustPolicy` or a trust file's path); with one,
            the manifest's signature is checked before any file is downloaded, and a version older than the one
            installed (a rollback, in PEP 440 order) is refused. None: ``$EDGEFT_TRUST``'s policy, if set; else
            unsigned bundles install with a warning, and signed ones with a warning that they were not verified.

    Returns:
        A :class:`PullResult`.

    Raises:
        BundleError: a downloaded file does not match the manifest's sha256 (it is
            deleted, nothing is installed).
        SignatureError: under a trust policy, the bundle is unsigned, wrongly signed, signed by an untrusted or
            revoked key, or older than the installed version; nothing is installed.
        RegistryError: the registry cannot be reached or refused the request.
    """
    policy = policy_for(trust)
    name, _, version = ref.partition("@")
    check_name(name)
    version = check_name(version, "version") if version else latest_version(name, registry, token)
    into = Path(into)
    target = into / name / version
    with _open(_url(registry, "bundles", name, "versions", version, "manifest"), token) as response:
        raw_manifest = response.read()
    manifest = _parse_manifest(raw_manifest, name, version)
    raw_signature = _fetch_signature(registry, token, name, version)
    check_signature(raw_manifest, raw_signature, policy, f"{registry} ({name}@{version})")
    if policy is not None:
        _refuse_rollback(into, name, version)
    _refuse_non_bundle(target)
    (into / PARTIAL).mkdir(parents=True, exist_ok=True)
    with FileLock(into / PARTIAL / f"{name}@{version}.lock"):  # a second pull of it waits, then finds it installed
        downloaded, resumed = 0, []
        if not _installed(target, manifest):
            partial = into / PARTIAL / f"{name}@{version}"
            for path, entry in manifest.files.items():
                fetched, was_resumed = _download(registry, token, name, version, path, partial / path, entry.size, progress)
                _check_file(partial / path, path, entry.size, entry.sha256)
                downloaded += fetched
                resumed += [path] if was_resumed else []
            with atomic.atomic_dir(target, overwrite=True) as tmp:
                for path in manifest.files:
                    (tmp / path).parent.mkdir(parents=True, exist_ok=True)
                    os.replace(partial / path, tmp / path)
                (tmp / MANIFEST).write_bytes(raw_manifest)
                if raw_signature is not None:
                    (tmp / SIGNATURE).write_bytes(raw_signature)
                Bundle.load(tmp, trust=policy)  # the whole folder verified once more before it becomes visible
            shutil.rmtree(partial, ignore_errors=True)
    atomic.write_json(into / name / CURRENT, {"name": name, "version": version, "path": version})
    return PullResult(name, version, target, downloaded, resumed)


def installed_path(into: str | os.PathLike, name: str) -> Path:
    """The folder of the version of ``name`` that ``current.json`` points at."""
    pointer = Path(into) / check_name(name) / CURRENT
    if not pointer.is_file():
        raise BundleError(f"No bundle {name!r} installed under {into}; run `edgeft pull {name}` first.")
    try:
        version = json.loads(pointer.read_text())["version"]
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as e:
        raise BundleError(f"{pointer} is damaged ({type(e).__name__}); pull {name} again to rewrite it.") from e
    if not isinstance(version, str):
        raise BundleError(f"{pointer} names no version ({version!r}); pull {name} again to rewrite it.")
    return pointer.parent / check_name(version, "version")


def _fetch_signature(registry: str, token: str | None, name: str, version: str) -> bytes | None:
    """The bundle's manifest.sig, or None where the registry has none (an unsigned bundle)."""
    try:
        with _open(_url(registry, "bundles", name, "versions", version, "files", SIGNATURE), token) as response:
            return response.read()
    except errors.NotFoundError:
        return None


def _refuse_rollback(into: Path, name: str, version: str) -> None:
    """Under a trust policy an older version never replaces the installed one: an attacker could serve an old, flawed one."""
    pointer = into / name / CURRENT
    try:
        installed = json.loads(pointer.read_text())["version"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # nothing installed yet
    if not isinstance(installed, str):
        return  # no version recorded: nothing to roll back from
    if is_older(version, installed):
        raise SignatureError(
            f"{name}@{version} is older than the installed {name}@{installed} (PEP 440 order); this device's trust policy "
            "refuses rollbacks. Nothing was installed: pull the installed or a newer version."
        )


def _refuse_non_bundle(target: Path) -> None:
    """Installing replaces ``target`` whole: never when it holds something else (a device's saved state, say)."""
    if target.exists() and not (target / MANIFEST).is_file():
        raise BundleError(
            f"{target} exists and is not a bundle (no {MANIFEST}); installing there would delete what it holds. "
            "Nothing was installed: move that folder away, or pull into another --into folder."
        )


def _parse_manifest(raw: bytes, name: str, version: str) -> Manifest:
    manifest = Manifest.from_json(raw)
    if (manifest.name, manifest.version) != (name, version):
        raise BundleError(f"The registry answered {name}@{version} with a manifest for {manifest.name}@{manifest.version}.")
    for path in manifest.files:
        try:
            check_relative_path(path)
        except errors.InvalidRequestError as e:
            raise BundleError(f"The manifest of {name}@{version} lists an unsafe path: {e}") from e
    return manifest


def _installed(target: Path, manifest: Manifest) -> bool:
    if not (target / MANIFEST).is_file():
        return False
    try:
        return Bundle.load(target).manifest.files == manifest.files
    except BundleError:
        return False


def _download(
    registry: str, token: str | None, name: str, version: str, path: str, dest: Path, size: int, progress: DownloadProgress | None
) -> tuple[int, bool]:
    """Fetch one file into ``dest``, continuing a partial one. Returns (bytes fetched, resumed)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    have = dest.stat().st_size if dest.is_file() else 0
    if have > size:
        dest.unlink()
        have = 0
    if have == size:
        return 0, False
    headers = {"range": f"bytes={have}-"} if have else {}
    fetched = 0
    with _open(
        _url(registry, "bundles", name, "versions", version, "files", *path.split("/")), token, headers=headers
    ) as response:
        resumed = have > 0 and response.status == 206
        if not resumed:
            have = 0
        with open(dest, "ab" if resumed else "wb") as f:
            while block := response.read(_CHUNK):
                f.write(block)
                f.flush()
                fetched += len(block)
                if progress:
                    progress(path, have + fetched, size)
            os.fsync(f.fileno())
    return fetched, resumed


def _check_file(file: Path, path: str, size: int, sha256: str) -> None:
    if file.stat().st_size != size or file_sha256(file) != sha256:
        file.unlink()
        raise BundleError(
            f"Downloaded file {path} does not match its sha256 in the registry's manifest: it was altered "
            "or damaged on the registry or on the way. Nothing was installed."
        )


def _url(registry: str, *parts: str) -> str:
    return registry.rstrip("/") + "/v1/" + "/".join(urllib.parse.quote(p, safe="") for p in parts)


def _open(url: str, token: str | None, *, method: str = "GET", data: Any = None, headers: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if token:
        request.add_header("authorization", f"Bearer {token}")
    try:
        return urllib.request.urlopen(request, timeout=_TIMEOUT)
    except urllib.error.HTTPError as e:
        raise _registry_error(e) from e
    except urllib.error.URLError as e:
        raise errors.RegistryError(f"Cannot reach the registry at {url}: {e.reason}.") from e


def _registry_error(e: urllib.error.HTTPError) -> errors.RegistryError:
    try:
        detail = json.loads(e.read()).get("detail", "")
    except (ValueError, AttributeError):
        detail = ""
    kind = {
        400: errors.InvalidRequestError,
        401: errors.UnauthorizedError,
        404: errors.NotFoundError,
        409: errors.VersionExistsError,
        413: errors.PayloadTooLargeError,
    }.get(e.code, errors.RegistryError)
    return kind(f"The registry answered {e.code} {e.reason}: {detail}")
