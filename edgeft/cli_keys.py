"""The ``edgeft keys`` and ``edgeft sign`` commands: publisher keys, the device's trust file, bundle signatures.

Each parses its arguments and calls one function of :mod:`edgeft.signing`.
"""

from __future__ import annotations

import argparse
from typing import Any

from edgeft import signing
from edgeft.errors import ConfigError

_TRUST_HELP = "the device's trust file (default: $EDGEFT_TRUST)"


def add_parsers(commands: Any) -> None:
    """Register ``sign`` and ``keys`` (create, trust, revoke, rotate, list) on the CLI's subcommands."""
    p = commands.add_parser("sign", help="sign a bundle's manifest with a publisher key (writes manifest.sig)")
    p.add_argument("bundle", help="bundle folder")
    p.add_argument("--key", required=True, help="private key file written by `edgeft keys create` (NAME.key)")
    p.set_defaults(run=_run_sign)

    keys = commands.add_parser("keys", help="publisher keys and the device's trust file: create, trust, revoke, rotate, list")
    actions = keys.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="create an Ed25519 key pair: NAME.key (private) and NAME.pub")
    create.add_argument("--out", required=True, help="folder for the key files (keep NAME.key on the workstation)")
    create.add_argument("--name", default="publisher", help="file name of the keys (default: %(default)s)")
    create.set_defaults(run=_run_create)
    trust = actions.add_parser("trust", help="add a public key (NAME.pub) to a trust file, creating it if missing")
    trust.add_argument("public_key", help="public key file (NAME.pub)")
    trust.add_argument("--trust", help=_TRUST_HELP)
    trust.set_defaults(run=_run_trust)
    revoke = actions.add_parser("revoke", help="revoke a key in a trust file: bundles it signed are refused from now on")
    revoke.add_argument("key_id", help="the key's id (see `edgeft keys list`)")
    revoke.add_argument("--reason", default="", help="why, kept in the trust file (default: none)")
    revoke.add_argument("--trust", help=_TRUST_HELP)
    revoke.set_defaults(run=_run_revoke)
    rotate = actions.add_parser(
        "rotate",
        help="create a new key and trust it beside the current one (revoke the old one "
        "with `keys revoke` once every bundle is re-signed)",
    )
    rotate.add_argument("--out", required=True, help="folder for the new key files")
    rotate.add_argument("--name", required=True, help="file name of the new keys, e.g. publisher-2027")
    rotate.add_argument("--trust", help=_TRUST_HELP)
    rotate.set_defaults(run=_run_rotate)
    listed = actions.add_parser("list", help="the trusted and the revoked keys of a trust file")
    listed.add_argument("--trust", help=_TRUST_HELP)
    listed.set_defaults(run=_run_list)


def _trust_file(args: argparse.Namespace) -> str:
    path = signing.trust_from_env(args.trust)
    if path is None:
        raise ConfigError("No trust file given: pass --trust FILE or set $EDGEFT_TRUST.")
    return path


def _run_sign(args: argparse.Namespace) -> None:
    signature = signing.sign_bundle(args.bundle, args.key)
    print(f"signed {args.bundle} with key {signature.key_id}")


def _run_create(args: argparse.Namespace) -> None:
    private, public = signing.create_key(args.out, args.name)
    print(f"key {signing.load_public_key(public).key_id}: private {private} (keep it secret), public {public}")


def _run_trust(args: argparse.Namespace) -> None:
    path = _trust_file(args)
    policy = signing.trust_key(path, args.public_key)
    print(f"{path} trusts {len(policy.keys)} key(s): {', '.join(k.key_id for k in policy.keys)}")


def _run_revoke(args: argparse.Namespace) -> None:
    path = _trust_file(args)
    signing.revoke_key(path, args.key_id, args.reason)
    print(f"revoked {args.key_id} in {path}: bundles it signed are refused")


def _run_rotate(args: argparse.Namespace) -> None:
    path = _trust_file(args)
    _, public = signing.create_key(args.out, args.name)
    policy = signing.trust_key(path, public)
    new = signing.load_public_key(public).key_id
    print(
        f"new key {new} is trusted in {path} beside {', '.join(k.key_id for k in policy.keys if k.key_id != new) or 'no other key'}; "
        f"sign bundles with {args.out}/{args.name}.key, then `edgeft keys revoke OLD_ID`"
    )


def _run_list(args: argparse.Namespace) -> None:
    policy = signing.TrustPolicy.load(_trust_file(args))
    for key in policy.keys:
        print(f"trusted  {key.key_id}  {key.name}  {key.created}")
    for revoked in policy.revoked:
        print(f"revoked  {revoked.key_id}  {revoked.revoked}  {revoked.reason}")
