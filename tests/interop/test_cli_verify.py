"""`swarmdrop verify` accepts good trees and names what is wrong with bad ones."""

from __future__ import annotations

import base64
import json
import shutil
import time

from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata, Timestamp

from sd_interop import (
    BULK_DROP_PATH,
    LONG_EXPIRIES,
    flip_byte,
    latest_version,
    signed_targets,
    target_file_path,
    tiny_png,
)


def assert_ok(swarmdrop, proc) -> None:
    assert proc.returncode == 0, "verify rejected a good tree\n" + swarmdrop.describe(proc)


def assert_refused(swarmdrop, proc, *needles: str) -> None:
    assert proc.returncode != 0, "verify accepted a bad tree\n" + swarmdrop.describe(proc)
    for needle in needles:
        assert needle.lower() in proc.stderr.lower(), (
            f"verify failed as it should, but stderr does not name {needle!r}\n" + swarmdrop.describe(proc)
        )


def first_target(published, prefix: str) -> str:
    targets = signed_targets(published)
    return next(p for p in sorted(targets) if p.startswith(prefix))


# --------------------------------------------------------------------------
# good trees
# --------------------------------------------------------------------------


def test_verify_accepts_fresh_tree(swarmdrop, pristine_published):
    assert_ok(swarmdrop, swarmdrop.verify(pristine_published))


def test_verify_accepts_fresh_tree_with_explicit_root(swarmdrop, pristine_published, tmp_path):
    root = tmp_path / "trusted-root.json"
    shutil.copyfile(pristine_published / "metadata" / "1.root.json", root)
    assert_ok(swarmdrop, swarmdrop.verify(pristine_published, "--root", root))


def test_verify_accepts_named_assets(swarmdrop, pristine_published):
    frame = first_target(pristine_published, "frames/")
    proc = swarmdrop.verify(pristine_published, "--asset", BULK_DROP_PATH, "--asset", frame)
    assert_ok(swarmdrop, proc)


def test_verify_json_output_is_json(swarmdrop, pristine_published):
    proc = swarmdrop.verify(pristine_published, "--json")
    assert_ok(swarmdrop, proc)
    try:
        json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"verify --json printed non-JSON ({exc})\n" + swarmdrop.describe(proc)) from None


def test_verify_accepts_second_version(swarmdrop, keydir, drop_dir, published):
    (drop_dir / "frames" / "f902-cli.png").write_bytes(tiny_png(902))
    swarmdrop.pack(drop_dir, keydir, published)
    assert latest_version(published, "targets") == 2
    assert_ok(swarmdrop, swarmdrop.verify(published))


# --------------------------------------------------------------------------
# bad trees
# --------------------------------------------------------------------------


def test_verify_names_asset_with_flipped_byte(swarmdrop, published):
    targets = signed_targets(published)
    path = first_target(published, "frames/")
    on_disk = target_file_path(published, path, targets[path])
    flip_byte(on_disk)
    proc = swarmdrop.verify(published)
    assert proc.returncode != 0, "verify accepted a flipped byte\n" + swarmdrop.describe(proc)
    # Accept either the drop path or the published file name.
    named = path in proc.stderr or on_disk.name in proc.stderr
    assert named, f"stderr names neither {path!r} nor {on_disk.name!r}\n" + swarmdrop.describe(proc)


def test_verify_names_asset_with_flipped_byte_when_asked_for_it(swarmdrop, published):
    targets = signed_targets(published)
    on_disk = target_file_path(published, BULK_DROP_PATH, targets[BULK_DROP_PATH])
    flip_byte(on_disk)
    proc = swarmdrop.verify(published, "--asset", BULK_DROP_PATH)
    assert proc.returncode != 0, "verify --asset accepted a flipped byte\n" + swarmdrop.describe(proc)
    assert BULK_DROP_PATH in proc.stderr or on_disk.name in proc.stderr, swarmdrop.describe(proc)


def test_verify_names_missing_asset(swarmdrop, published):
    targets = signed_targets(published)
    path = "checkout/mint.js" if "checkout/mint.js" in targets else first_target(published, "checkout/")
    on_disk = target_file_path(published, path, targets[path])
    on_disk.unlink()
    proc = swarmdrop.verify(published)
    assert proc.returncode != 0, "verify accepted a missing asset\n" + swarmdrop.describe(proc)
    assert path in proc.stderr or on_disk.name in proc.stderr, swarmdrop.describe(proc)


def test_verify_refuses_expired_timestamp(swarmdrop, keydir, pristine_drop, tmp_path):
    out = tmp_path / "published"
    expiries = [*LONG_EXPIRIES]
    expiries[expiries.index("--expires-timestamp") + 1] = "1d"
    swarmdrop.pack(pristine_drop, keydir, out, source_date_epoch=int(time.time()) - 2 * 86400, expiries=expiries)
    assert_refused(swarmdrop, swarmdrop.verify(out), "timestamp")


def test_verify_refuses_targets_rollback(swarmdrop, keydir, drop_dir, published):
    (drop_dir / "frames" / "f903-cli.png").write_bytes(tiny_png(903))
    swarmdrop.pack(drop_dir, keydir, published)
    md = published / "metadata"
    assert (md / "2.targets.json").is_file()
    shutil.copyfile(md / "1.targets.json", md / "2.targets.json")
    assert_refused(swarmdrop, swarmdrop.verify(published), "targets")


def test_verify_refuses_timestamp_signed_by_unknown_key(swarmdrop, published):
    ts_path = published / "metadata" / "timestamp.json"
    ts = Metadata[Timestamp].from_file(str(ts_path))
    ts.signatures.clear()
    ts.sign(CryptoSigner.generate_ed25519())
    ts.to_file(str(ts_path))
    assert_refused(swarmdrop, swarmdrop.verify(published), "timestamp")


def test_verify_refuses_foreign_trusted_root(swarmdrop, pristine_drop, published, tmp_path):
    other_keys = tmp_path / "other-keys"
    swarmdrop.keygen(other_keys)
    other = tmp_path / "other-published"
    swarmdrop.pack(pristine_drop, other_keys, other)
    proc = swarmdrop.verify(published, "--root", other / "metadata" / "1.root.json")
    assert proc.returncode != 0, "verify accepted a tree signed by keys the trusted root does not know\n" + swarmdrop.describe(proc)


def test_verify_refuses_tampered_provenance(swarmdrop, published):
    v = latest_version(published, "targets")
    p = published / "provenance" / f"{v}.dsse.json"
    env = json.loads(p.read_text())
    payload = bytearray(base64.b64decode(env["payload"]))
    payload[len(payload) // 2] ^= 0x01
    env["payload"] = base64.b64encode(bytes(payload)).decode()
    p.write_text(json.dumps(env))
    proc = swarmdrop.verify(published)
    assert proc.returncode != 0, "verify accepted a tampered provenance envelope\n" + swarmdrop.describe(proc)
