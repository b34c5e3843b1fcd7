"""Signed bundles: the publisher's Ed25519 signature over the manifest, checked against the device's trust policy.

The manifest holds every file's size and sha256, so signing its exact bytes
signs the whole bundle: a changed label, a rewritten file (even with its new
sha256 written into the manifest) or a manifest from another publisher no
longer matches the signature. The signature lies beside the manifest in
``manifest.sig`` (never listed in the manifest, which it covers)::

    {"format_version": 1, "algorithm": "ed25519", "key_id": "3f2a...", "signature": "<base64>"}

Keys (``edgeft keys create``): ``NAME.key`` is the private key (PEM, PKCS#8,
readable by its owner only; it stays on the workstation), ``NAME.pub`` the
public key as JSON (``key_id``, ``public_key`` in base64, ``name``). A key's id
is the first 16 hex digits of the sha256 of its 32 raw public bytes.

The trust policy (``trust.json``, :class:`TrustPolicy`) lists the public keys a
device accepts and the ids of revoked ones. With a policy, :meth:`Bundle.load`
and ``edgeft pull`` refuse a bundle that is unsigned, signed by an unknown or
revoked key, or whose signature does not verify; without one, an unsigned
bundle loads with an :class:`UnsignedBundleWarning`, and a signed one with an
:class:`UnverifiedSignatureWarning` (a signature no key checked vouches for
nothing: whoever altered the manifest could have kept the old ``manifest.sig``).

The policy in force (:func:`policy_for`) is the one given as an argument
(``Bundle.load(trust=...)``, ``RuntimeConfig(trust=...)``, ``--trust`` on the
command line), else the trust file named by ``$EDGEFT_TRUST``, else none. Every
reader goes through :meth:`Bundle.load`, which applies it: the CLI, the Python
API, the service and registry pulls alike.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import hashlib
import os
import warnings
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import ConfigDict, Field, StringConstraints

from edgeft import atomic
from edgeft.errors import BundleError, ConfigError
from edgeft.layout import MANIFEST, SIGNATURE
from edgeft.manifest import schema_problems

TRUST_ENV = "EDGEFT_TRUST"  # path of the device's trust file, read by the command line and the service
SIGNATURE_FORMAT = 1
TRUST_FORMAT = 1

_SCHEMA = ConfigDict(extra="forbid")
_KeyId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")]
_Base64 = Annotated[str, StringConstraints(min_length=1, pattern=r"^[A-Za-z0-9+/=]+$")]


class SignatureError(BundleError):
    """A bundle's signature is missing, invalid, or by a key the device does not trust (or has revoked)."""


class UnsignedBundleWarning(UserWarning):
    """A bundle was loaded without a trust policy and carries no signature: nothing vouches for its publisher."""


class UnverifiedSignatureWarning(UnsignedBundleWarning):
    """A bundle carries a signature, but was loaded without a trust policy: no key checked it, so it vouches for nothing."""


@pydantic.dataclasses.dataclass(frozen=True, config=_SCHEMA)
class SignatureFile:
    """``manifest.sig``: which key signed the manifest's bytes, and the signature."""

    key_id: _KeyId
    signature: _Base64
    algorithm: Literal["ed25519"] = "ed25519"
    format_version: Literal[1] = SIGNATURE_FORMAT


@pydantic.dataclasses.dataclass(frozen=True, config=_SCHEMA)
class PublicKey:
    """A publisher's public key, as ``NAME.pub`` holds it and a trust file lists it."""

    key_id: _KeyId
    public_key: _Base64  # the 32 raw Ed25519 bytes, base64
    name: str = ""
    created: str = ""


@pydantic.dataclasses.dataclass(frozen=True, config=_SCHEMA)
class Revocation:
    key_id: _KeyId
    revoked: str  # when, UTC ISO 8601
    reason: str = ""


@pydantic.dataclasses.dataclass(frozen=True, config=_SCHEMA)
class TrustPolicy:
    """The keys a device accepts bundles from, and those it no longer accepts (``trust.json``)."""

    keys: list[PublicKey] = Field(default_factory=list)
    revoked: list[Revocation] = Field(default_factory=list)
    format_version: Literal[1] = TRUST_FORMAT

    @classmethod
    def load(cls, path: str | os.PathLike) -> TrustPolicy:
        """Read a trust file.

        Raises:
            ConfigError: the file is missing, not JSON, or does not match the schema.
        """
        return _read(Path(path), cls, "trust file", "Create one with `edgeft keys trust PUBLIC_KEY --trust FILE`.")

    def save(self, path: str | os.PathLike) -> None:
        """Write the policy atomically to ``path``."""
        atomic.write_json(path, dataclasses.asdict(self))

    def key(self, key_id: str) -> PublicKey | None:
        return next((k for k in self.keys if k.key_id == key_id), None)

    def is_revoked(self, key_id: str) -> bool:
        return any(r.key_id == key_id for r in self.revoked)


def resolve_trust(trust: TrustPolicy | str | os.PathLike | None) -> TrustPolicy | None:
    """A trust policy from a policy, a trust file's path, or None (no policy)."""
    if trust is None or isinstance(trust, TrustPolicy):
        return trust
    if isinstance(trust, (str, os.PathLike)):
        return TrustPolicy.load(trust)
    raise ConfigError(f"trust must be a TrustPolicy or the path of a trust file, got {type(trust).__name__}")


def policy_for(trust: TrustPolicy | str | os.PathLike | None) -> TrustPolicy | None:
    """The trust policy in force: ``trust`` (a policy or a trust file's path), else ``$EDGEFT_TRUST``'s file, else none.

    Raises:
        ConfigError: the trust file is missing or malformed.
    """
    return resolve_trust(trust if trust is not None else trust_from_env())


def trust_from_env(given: str | os.PathLike | None = None) -> str | None:
    """The trust file the command line and the service use: ``given``, else ``$EDGEFT_TRUST``, else none."""
    return str(given) if given else (os.environ.get(TRUST_ENV) or None)


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def create_key(folder: str | os.PathLike, name: str) -> tuple[Path, Path]:
    """A new Ed25519 key pair: ``folder/NAME.key`` (private, mode 0600) and ``folder/NAME.pub``.

    Returns:
        The paths of the private and the public key file.

    Raises:
        ConfigError: a key of that name exists in ``folder`` already (keys are never overwritten).
    """
    folder = Path(folder)
    private_file, public_file = folder / f"{name}.key", folder / f"{name}.pub"
    if not name or "/" in name or private_file.exists() or public_file.exists():
        raise ConfigError(
            f"Cannot create key {name!r} in {folder}: a key of that name exists, or the name is invalid. "
            "Choose another --name; keys are never overwritten."
        )
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    folder.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(private_file) as tmp:
        tmp.chmod(0o600)
        tmp.write_bytes(pem)
    atomic.write_json(public_file, dataclasses.asdict(public_key_of(key, name)))
    return private_file, public_file


def public_key_of(key: Ed25519PrivateKey, name: str = "") -> PublicKey:
    public = key.public_key()
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    return PublicKey(key_id=key_id(public), public_key=base64.b64encode(raw).decode(), name=name, created=created)


def load_private_key(path: str | os.PathLike) -> Ed25519PrivateKey:
    """The Ed25519 private key in the PEM file ``path``.

    Raises:
        ConfigError: the file is missing or holds no Ed25519 private key.
    """
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as e:
        raise ConfigError(f"{path} is not a readable Ed25519 private key ({e}); create one with `edgeft keys create`.") from e
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(
            f"{path} holds a {type(key).__name__}, not an Ed25519 private key; create one with `edgeft keys create`."
        )
    return key


def load_public_key(path: str | os.PathLike) -> PublicKey:
    """A public key file written by :func:`create_key`."""
    return _read(Path(path), PublicKey, "public key file", "Use the NAME.pub file `edgeft keys create` wrote.")


def sign_bundle(folder: str | os.PathLike, private_key: str | os.PathLike) -> SignatureFile:
    """Sign the manifest of the bundle in ``folder`` with ``private_key``; writes ``manifest.sig`` atomically.

    Raises:
        BundleError: no manifest in ``folder``.
        ConfigError: the key file is not an Ed25519 private key.
    """
    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        raise BundleError(f"No bundle at {folder}: {MANIFEST} not found; there is nothing to sign.")
    key = load_private_key(private_key)
    raw = (folder / MANIFEST).read_bytes()
    signature = SignatureFile(key_id=key_id(key.public_key()), signature=base64.b64encode(key.sign(raw)).decode())
    atomic.write_json(folder / SIGNATURE, dataclasses.asdict(signature))
    return signature


def check_bundle_signature(folder: Path, manifest: bytes, policy: TrustPolicy | None) -> str | None:
    """Check the signature in ``folder/manifest.sig`` over ``manifest`` against ``policy``.

    Returns:
        The id of the key that signed, or None for an unsigned bundle loaded without a policy.

    Raises:
        SignatureError: under a policy, the bundle is unsigned, or its signature does not verify by a trusted,
            unrevoked key. Without a policy, a signature file that is present but malformed.
    """
    file = folder / SIGNATURE
    signature = file.read_bytes() if file.is_file() else None
    return check_signature(manifest, signature, policy, str(folder))


def check_signature(manifest: bytes, signature: bytes | None, policy: TrustPolicy | None, where: str) -> str | None:
    """Like :func:`check_bundle_signature`, for a manifest's and a signature file's bytes (``where`` names them)."""
    if signature is None:
        if policy is not None:
            raise SignatureError(
                f"The bundle at {where} is not signed, and this device's trust policy accepts signed bundles only. "
                "Nothing was loaded or installed: sign it with `edgeft sign BUNDLE --key KEY` on the workstation."
            )
        warnings.warn(
            f"The bundle at {where} is not signed and no trust policy is set: nothing vouches for who published it. "
            f"Set a trust policy (--trust, ${TRUST_ENV} or RuntimeConfig(trust=...)) to refuse unsigned bundles.",
            UnsignedBundleWarning,
            stacklevel=4,
        )
        return None
    parsed = _parse(signature, SignatureFile, f"{where}/{SIGNATURE}", "Re-sign the bundle with `edgeft sign`.", SignatureError)
    if policy is None:
        warnings.warn(
            f"The bundle at {where} carries a signature by key {parsed.key_id}, but no trust policy is set, so it was "
            f"not verified: the manifest may have been altered since. Set a trust policy (--trust, ${TRUST_ENV} or "
            "RuntimeConfig(trust=...)) that lists the publisher's key to check it.",
            UnverifiedSignatureWarning,
            stacklevel=4,
        )
        return parsed.key_id
    if policy.is_revoked(parsed.key_id):
        raise SignatureError(
            f"The bundle at {where} is signed by key {parsed.key_id}, which this device's trust policy has "
            "revoked. Nothing was loaded or installed: ask the publisher for a bundle signed with a current key."
        )
    trusted = policy.key(parsed.key_id)
    if trusted is None:
        known = ", ".join(k.key_id for k in policy.keys) or "none"
        raise SignatureError(
            f"The bundle at {where} is signed by key {parsed.key_id}, which this device does not trust "
            f"(trusted: {known}). Nothing was loaded or installed: add the publisher's public key with "
            "`edgeft keys trust`, or get the bundle from its real publisher."
        )
    try:
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(trusted.public_key, validate=True))
        public.verify(base64.b64decode(parsed.signature, validate=True), manifest)
    except (InvalidSignature, ValueError, binascii.Error) as e:
        raise SignatureError(
            f"The signature of the bundle at {where} does not match its {MANIFEST}: the manifest was altered "
            "after signing (labels, files or checksums), or the signature is damaged. Nothing was loaded or "
            "installed: re-download the bundle, or have the publisher sign it again."
        ) from e
    return parsed.key_id


def trust_key(trust_file: str | os.PathLike, public_key_file: str | os.PathLike) -> TrustPolicy:
    """Add a public key to a trust file (created if missing); refuses a key that was revoked.

    Raises:
        ConfigError: the key is revoked in this policy, or a file is malformed.
    """
    policy = TrustPolicy.load(trust_file) if Path(trust_file).exists() else TrustPolicy()
    key = load_public_key(public_key_file)
    if policy.is_revoked(key.key_id):
        raise ConfigError(
            f"Key {key.key_id} was revoked in {trust_file}; a revoked key cannot be trusted again. Create a new key."
        )
    if policy.key(key.key_id) is None:
        policy = dataclasses.replace(policy, keys=[*policy.keys, key])
    policy.save(trust_file)
    return policy


def revoke_key(trust_file: str | os.PathLike, revoked_id: str, reason: str = "") -> TrustPolicy:
    """Revoke key ``revoked_id`` in a trust file: bundles it signed are refused from now on.

    Raises:
        ConfigError: the trust file is missing or malformed, or the id is not a key id.
    """
    policy = TrustPolicy.load(trust_file)
    if policy.key(revoked_id) is None and not policy.is_revoked(revoked_id):
        known = ", ".join(k.key_id for k in policy.keys) or "none"
        raise ConfigError(f"{trust_file} lists no key {revoked_id!r} (keys: {known}); nothing was revoked.")
    if not policy.is_revoked(revoked_id):
        when = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        policy = dataclasses.replace(
            policy,
            keys=[k for k in policy.keys if k.key_id != revoked_id],
            revoked=[*policy.revoked, Revocation(key_id=revoked_id, revoked=when, reason=reason)],
        )
    policy.save(trust_file)
    return policy


def _read(path: Path, schema: type, what: str, fix: str) -> Any:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"The {what} {path} cannot be read ({e.strerror}). {fix}") from e
    return _parse(raw, schema, f"{what} {path}", fix, ConfigError)


def _parse(raw: bytes, schema: type, what: str, fix: str, error: type[Exception]) -> Any:
    try:
        return pydantic.TypeAdapter(schema).validate_json(raw, strict=True)
    except pydantic.ValidationError as e:
        raise error(schema_problems(what, e, fix)) from e
