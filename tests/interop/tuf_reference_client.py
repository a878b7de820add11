#!/usr/bin/env python3
"""Reference TUF client: python-tuf's ``ngclient`` behind the tuf-conformance client CLI.

``test_tuf_attacks.py`` and ``test_tuf_workflow.py`` run every scenario against ``swarmdrop tuf-client``
and against this script.  python-tuf is the reference implementation of the
TUF client workflow, so a scenario this client fails is a wrong scenario (or a
documented python-tuf gap), not a swarmdrop bug.  It keeps to the same contract
as ``swarmdrop tuf-client``:

    CLIENT --metadata-dir D init ROOT
    CLIENT --metadata-dir D --metadata-url U refresh
    CLIENT --metadata-dir D --metadata-url U --target-name N \\
           --target-base-url B --target-dir T download

Exit code 0 on full success, 1 on any failure (the error goes to stderr).
``init`` copies the root only: no network, and no python-tuf import, which
keeps the many short runs of the suite fast.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tuf_reference_client", description=__doc__.splitlines()[0])
    p.add_argument("--metadata-dir", required=True, type=Path)
    p.add_argument("--metadata-url")
    p.add_argument("--target-name")
    p.add_argument("--target-base-url")
    p.add_argument("--target-dir", type=Path)
    sub = p.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init", help="trust ROOT: copy it to METADATA_DIR/root.json")
    init.add_argument("root", type=Path)
    sub.add_parser("refresh", help="update top-level metadata (TUF client workflow)")
    sub.add_parser("download", help="refresh, then fetch and verify one target")
    return p


def _init(args: argparse.Namespace) -> None:
    args.metadata_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(args.root, args.metadata_dir / "root.json")


# securesystemslib.signer imports every cloud/HSM signer backend it finds
# installed (boto3 alone is ~140 ms); a client only verifies with local public
# keys, so hide them.  Each of those imports is optional (guarded by
# ``except ImportError``) and python-tuf's verification does not change.
_SIGNER_BACKENDS = ("boto3", "botocore", "google.cloud", "azure", "hvac", "pkcs11", "sigstore")


def _updater(args: argparse.Namespace):  # -> tuf.ngclient.Updater
    for name in _SIGNER_BACKENDS:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]
    from tuf.ngclient import Updater

    if not args.metadata_url:
        raise SystemExit("--metadata-url is required")
    return Updater(
        metadata_dir=str(args.metadata_dir),
        metadata_base_url=args.metadata_url,
        target_dir=str(args.target_dir) if args.target_dir else None,
        target_base_url=args.target_base_url,
        bootstrap=None,  # the root written by `init` (or updated since) is the trust anchor
    )


def _download(args: argparse.Namespace) -> None:
    for name in ("target_name", "target_base_url", "target_dir"):
        if getattr(args, name) is None:
            raise SystemExit(f"--{name.replace('_', '-')} is required for download")
    updater = _updater(args)
    updater.refresh()
    info = updater.get_targetinfo(args.target_name)
    if info is None:
        raise LookupError(f"target {args.target_name!r} is not in any trusted targets role")
    # A cached file with the trusted length and hashes is not fetched again.
    if updater.find_cached_target(info) is None:
        updater.download_target(info)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "init":
            _init(args)
        elif args.command == "refresh":
            _updater(args).refresh()
        else:
            _download(args)
    except Exception as exc:  # noqa: BLE001 - the CLI contract is "exit 1 on any failure"
        print(f"tuf_reference_client: {args.command} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
