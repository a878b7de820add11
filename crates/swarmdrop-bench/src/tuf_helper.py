"""The python-tuf side of `swarmdrop bench tuf`.

Builds a TUF repository with python-tuf's Metadata API (consistent snapshots, the chosen
key type, top-level targets delegating to hash-prefix bins that hold the targets), writes
it under OUT/metadata, then times python-tuf's ngclient on it in-process: each round a
fresh Updater trusting only 1.root.json refreshes and looks up every target, fetching from
memory (no HTTP, no disk reads), so the figure is the client's own work: parsing,
canonical JSON, signature checks, the delegation walk. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer
from tuf.ngclient import Updater
from tuf.ngclient.fetcher import FetcherInterface


def new_signer(keytype: str) -> CryptoSigner:
    if keytype == "ecdsa":
        return CryptoSigner.generate_ecdsa()
    if keytype == "rsa":
        return CryptoSigner.generate_rsa()
    return CryptoSigner.generate_ed25519()


def build(out: Path, targets: int, bins: int, keytype: str) -> list[str]:
    """Writes the repository; returns every target path."""
    expires = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=30)
    signers = {role: new_signer(keytype) for role in ("root", "timestamp", "snapshot", "targets", "bins")}
    root = Root(expires=expires, consistent_snapshot=True)
    for role in ("root", "timestamp", "snapshot", "targets"):
        root.add_key(signers[role].public_key, role)
    top = Targets(expires=expires)
    top.delegations = Delegations(keys={}, roles={})
    width = max(1, (bins - 1).bit_length() + 3) // 4
    prefixes_per_bin = max(1, 16**width // bins)
    bin_roles: dict[str, Targets] = {}
    for index in range(bins):
        prefixes = [f"{p:0{width}x}" for p in range(index * prefixes_per_bin, (index + 1) * prefixes_per_bin)]
        name = f"bin-{index:04d}"
        role = DelegatedRole(name=name, keyids=[], threshold=1, terminating=True, path_hash_prefixes=prefixes)
        top.delegations.roles[name] = role
        top.add_key(signers["bins"].public_key, name)
        bin_roles[name] = Targets(expires=expires)
    paths = [f"assets/{i:06d}.bin" for i in range(targets)]
    for path in paths:
        digest = hashlib.sha256(path.encode()).hexdigest()
        for name, role in top.delegations.roles.items():
            if role.is_delegated_path(path):
                data = path.encode()
                bin_roles[name].targets[path] = TargetFile(
                    length=len(data), hashes={"sha256": hashlib.sha256(data).hexdigest()}, path=path
                )
                break
        else:
            raise SystemExit(f"no bin for {path} ({digest[:width]})")
    metadata = out / "metadata"
    metadata.mkdir(parents=True, exist_ok=True)
    serializer = JSONSerializer(compact=True)

    def write(md: Metadata, signer: CryptoSigner, name: str) -> bytes:
        md.sign(signer)
        data = md.to_bytes(serializer)
        (metadata / name).write_bytes(data)
        return data

    snapshot = Snapshot(expires=expires)
    for name, role in bin_roles.items():
        write(Metadata(role), signers["bins"], f"1.{name}.json")
        snapshot.meta[f"{name}.json"] = MetaFile(version=1)
    write(Metadata(top), signers["targets"], "1.targets.json")
    snapshot.meta["targets.json"] = MetaFile(version=1)
    write(Metadata(snapshot), signers["snapshot"], "1.snapshot.json")
    timestamp = Timestamp(expires=expires, snapshot_meta=MetaFile(version=1))
    write(Metadata(timestamp), signers["timestamp"], "timestamp.json")
    write(Metadata(root), signers["root"], "1.root.json")
    return paths


class MemoryFetcher(FetcherInterface):
    """Serves the repository's files from memory."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files

    def _fetch(self, url: str):  # type: ignore[override]
        from tuf.api.exceptions import DownloadHTTPError

        name = url.rsplit("/", 1)[-1]
        if name not in self.files:
            raise DownloadHTTPError(f"{name} not found", 404)
        return iter([self.files[name]])


def time_python_tuf(out: Path, paths: list[str], rounds: int) -> list[float]:
    files = {p.name: p.read_bytes() for p in (out / "metadata").iterdir()}
    root = files["1.root.json"]
    seconds = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as work:
            Path(work, "root.json").write_bytes(root)
            started = time.perf_counter()
            updater = Updater(
                metadata_dir=work,
                metadata_base_url="http://bench.invalid/metadata/",
                fetcher=MemoryFetcher(files),
                bootstrap=root,
            )
            updater.refresh()
            for path in paths:
                if updater.get_targetinfo(path) is None:
                    raise SystemExit(f"python-tuf did not find {path}")
            seconds.append(time.perf_counter() - started)
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--targets", type=int, default=2000)
    parser.add_argument("--bins", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keytype", choices=["ecdsa", "ed25519", "rsa"], default="ecdsa")
    args = parser.parse_args()
    paths = build(args.out, args.targets, args.bins, args.keytype)
    seconds = time_python_tuf(args.out, paths, args.rounds)
    json.dump(
        {"targets": paths, "python_tuf_seconds": seconds, "median": statistics.median(seconds)},
        sys.stdout,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
