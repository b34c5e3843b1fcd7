"""How bundle versions are ordered: as PEP 440 says (``packaging.version``), never by hand.

``1.0.9 < 1.0.10``, ``1.0.0rc1 < 1.0.0`` (a pre-release comes before its
release; ``1.0.0-rc1`` is the same version spelt another way), and a local
label orders after its public version: ``1.0.9 < 1.0.9+fleet.1 < 1.0.10``.
A device under a trust policy uses this order to refuse rollbacks.
"""

from __future__ import annotations

from packaging.version import InvalidVersion, Version

from edgeft.errors import BundleError


def bundle_version(version: str) -> Version:
    """``version`` as a PEP 440 version, for ordering.

    Raises:
        BundleError: ``version`` is not a PEP 440 version, so it has no place in the order.
    """
    try:
        return Version(version)
    except InvalidVersion:
        raise BundleError(
            f"Bundle version {version!r} is not a PEP 440 version (e.g. 1.2.0, 1.2.0rc1, 1.2.0+fleet.3), so it cannot be "
            "ordered against others; export or publish the bundle with such a version."
        ) from None


def is_older(version: str, than: str) -> bool:
    """Whether bundle ``version`` comes before ``than`` in PEP 440 order.

    Raises:
        BundleError: either is not a PEP 440 version.
    """
    return bundle_version(version) < bundle_version(than)
