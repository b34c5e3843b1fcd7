"""Which names, versions and file paths the registry and its client accept.

Both sides check: the server before storing an upload, the client before
writing a file a (possibly hostile) registry lists in a manifest. Nothing may
point outside the bundle: no absolute paths, no ``..``, no links.
"""

from __future__ import annotations

import re
import tarfile
from pathlib import Path, PurePosixPath

from edgeft.registry.errors import InvalidRequestError, PayloadTooLargeError

_TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$")
_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+-]{0,199}$")
MAX_DEPTH = 16  # folders a bundle file may lie under: bundles use two; thousands exhaust Python's recursion when unpacked


def check_name(value: str, what: str = "bundle name") -> str:
    """Return ``value`` if it is a safe bundle name or version, else raise.

    Raises:
        InvalidRequestError: ``value`` is empty, too long, holds ``..`` or a
            character other than letters, digits, ``.``, ``_``, ``+`` and ``-``.
    """
    if not _TOKEN.match(value) or ".." in value:
        raise InvalidRequestError(
            f"Invalid {what} {value!r}: use 1-100 letters, digits, '.', '_', '+' or '-', "
            "starting with a letter or digit, without '..'."
        )
    return value


def check_relative_path(value: str) -> str:
    """Return ``value`` if it is a safe relative POSIX path inside a bundle, else raise.

    Raises:
        InvalidRequestError: the path is absolute, holds ``..``, ``.``, empty
            parts, backslashes or unusual characters, or lies more than ``MAX_DEPTH`` folders deep.
    """
    if value.count("/") > MAX_DEPTH:
        raise InvalidRequestError(
            f"Invalid file path {value[:80]!r}...: {value.count('/')} folders deep; a bundle's files lie at most {MAX_DEPTH} deep."
        )
    path = PurePosixPath(value)
    if (
        not value
        or "\\" in value
        or path.is_absolute()
        or not all(_PART.match(p) for p in path.parts)
        or any(p in (".", "..") for p in path.parts)
        or path.as_posix() != value
    ):
        raise InvalidRequestError(f"Invalid file path {value!r}: expected a relative path inside the bundle, without '..'.")
    return value


def safe_extract(archive: str | Path, into: Path, max_bytes: int) -> None:
    """Extract a tar archive of a bundle, refusing anything that could escape ``into``.

    Raises:
        InvalidRequestError: not a tar archive, or a member is a link, a device,
            or has an unsafe path.
        PayloadTooLargeError: the members unpack to more than ``max_bytes``.
    """
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            members = tar.getmembers()
            total = 0
            for member in members:
                check_relative_path(member.name.removeprefix("./"))
                if not (member.isfile() or member.isdir()):
                    raise InvalidRequestError(
                        f"Upload member {member.name!r} is a link or special file; bundles hold plain files only."
                    )
                total += member.size
                if total > max_bytes:
                    raise PayloadTooLargeError(f"The upload unpacks to more than the registry's limit of {max_bytes} bytes.")
            # The members are checked above; where Python has tar filters (3.10.12+, 3.11.4+) "data" checks again.
            extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(into, members=members, **extra)
    except tarfile.TarError as e:
        raise InvalidRequestError(f"The upload is not a readable tar archive: {e}.") from e
