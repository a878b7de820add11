"""python-tuf's ngclient consumes a swarmdrop PUBLISHED tree, and refuses tampering."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest
from securesystemslib.signer import CryptoSigner
from tuf.api import exceptions
from tuf.api.metadata import Metadata, Snapshot, Targets, Timestamp
from tuf.ngclient import Updater

from sd_interop import (
    LONG_EXPIRIES,
    P2P_CLASSES,
    drop_files,
    flip_byte,
    latest_version,
    read_json,
    signed_targets,
    target_file_path,
    tiny_png,
)

NEW_ASSET = "frames/f900-interop.png"


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def new_client_dir(tmp_path: Path, published: Path, name: str = "client") -> Path:
    """A client dir whose metadata/root.json is PUBLISHED/metadata/1.root.json."""
    client = tmp_path / name
    (client / "metadata").mkdir(parents=True)
    (client / "targets").mkdir()
    src = published / "metadata" / "1.root.json"
    assert src.is_file(), f"missing {src}"
    shutil.copyfile(src, client / "metadata" / "root.json")
    return client


def make_updater(client: Path, base_url: str) -> Updater:
    return Updater(
        metadata_dir=str(client / "metadata"),
        metadata_base_url=f"{base_url}metadata/",
        target_dir=str(client / "targets"),
        target_base_url=f"{base_url}targets/",
        bootstrap=None,  # use client/metadata/root.json as the trusted root
    )


def trusted_targets(client: Path) -> Metadata[Targets]:
    """The targets metadata the client accepted (ngclient persists it as targets.json)."""
    return Metadata[Targets].from_file(str(client / "metadata" / "targets.json"))


def pack_version_2(swarmdrop, drop_dir: Path, keydir: Path, published: Path) -> bytes:
    """Add NEW_ASSET to ``drop_dir`` and re-pack into ``published``; return the new asset bytes."""
    data = tiny_png(900)
    dest = drop_dir / NEW_ASSET
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data)
    swarmdrop.pack(drop_dir, keydir, published)
    assert latest_version(published, "targets") == 2, (
        "re-packing with a new asset must produce 2.targets.json; metadata dir has: "
        + ", ".join(sorted(p.name for p in (published / "metadata").iterdir()))
    )
    assert latest_version(published, "snapshot") == 2
    ts = read_json(published / "metadata" / "timestamp.json")
    assert ts["signed"]["version"] == 2, f"timestamp.json version is {ts['signed']['version']}, want 2"
    return data


def assert_exact(excinfo: pytest.ExceptionInfo, cls: type) -> None:
    assert type(excinfo.value) is cls, (
        f"expected exactly {cls.__name__}, got {type(excinfo.value).__name__}: {excinfo.value}"
    )


# --------------------------------------------------------------------------
# happy path
# --------------------------------------------------------------------------


def test_refresh_and_download_every_target(published, pristine_drop, static_server, tmp_path):
    srv = static_server(published)
    client = new_client_dir(tmp_path, published)
    updater = make_updater(client, srv.url)
    updater.refresh()

    targets = trusted_targets(client).signed.targets
    sources = drop_files(pristine_drop)
    assert set(targets) == set(sources), (
        f"targets in metadata vs files in drop differ:\n"
        f"  only in metadata: {sorted(set(targets) - set(sources))}\n"
        f"  only in drop:     {sorted(set(sources) - set(targets))}"
    )
    for path in sorted(targets):
        info = updater.get_targetinfo(path)
        assert info is not None, f"get_targetinfo({path!r}) returned None"
        assert "sha256" in info.hashes, f"{path}: no sha256 hash in {info.hashes}"
        assert updater.find_cached_target(info) is None
        local = updater.download_target(info, filepath=str(client / "targets" / path.replace("/", "_")))
        got = Path(local).read_bytes()
        want = sources[path].read_bytes()
        assert got == want, f"{path}: downloaded {len(got)} bytes differ from the source asset ({len(want)} bytes)"
        assert info.length == len(want), f"{path}: metadata length {info.length} != {len(want)}"


def test_targets_custom_fields(published, static_server, tmp_path):
    """Target ``custom`` carries class/budget_ms/paths, and p2p info exactly for p2p classes."""
    srv = static_server(published)
    client = new_client_dir(tmp_path, published)
    make_updater(client, srv.url).refresh()
    for path, tf in sorted(trusted_targets(client).signed.targets.items()):
        custom = tf.unrecognized_fields.get("custom")
        assert isinstance(custom, dict), f"{path}: target has no custom object"
        for key in ("class", "budget_ms", "paths"):
            assert key in custom, f"{path}: custom lacks {key!r}: {custom}"
        if custom["class"] in P2P_CLASSES:
            p2p = custom.get("p2p")
            assert isinstance(p2p, dict), f"{path}: class {custom['class']} allows p2p but custom.p2p is {p2p!r}"
            ih = p2p.get("infohash")
            assert isinstance(ih, str) and len(ih) == 40 and ih == ih.lower(), f"{path}: bad infohash {ih!r}"
            torrent = p2p.get("torrent", "")
            assert re.fullmatch(rf"torrents/{ih}\.[0-9a-f]{{16}}\.torrent", torrent), f"{path}: torrent is {torrent!r}"
            assert (published / p2p["torrent"]).is_file(), f"{path}: {p2p['torrent']} not published"
            assert isinstance(p2p.get("piece_length"), int) and p2p["piece_length"] > 0
            assert f"urn:btih:{ih}" in p2p.get("magnet", "").lower(), f"{path}: magnet {p2p.get('magnet')!r}"
        else:
            assert "p2p" not in custom, f"{path}: class {custom['class']} is not p2p but custom has p2p"


# --------------------------------------------------------------------------
# refusals
# --------------------------------------------------------------------------


def test_flipped_byte_in_asset_is_refused(published, static_server, tmp_path):
    srv = static_server(published)
    targets = signed_targets(published)
    path = next(p for p in sorted(targets) if p.startswith("checkout/"))
    flip_byte(target_file_path(published, path, targets[path]))

    client = new_client_dir(tmp_path, published)
    updater = make_updater(client, srv.url)
    updater.refresh()
    info = updater.get_targetinfo(path)
    assert info is not None
    with pytest.raises(exceptions.LengthOrHashMismatchError) as excinfo:
        updater.download_target(info)
    assert_exact(excinfo, exceptions.LengthOrHashMismatchError)


def test_timestamp_rollback_is_refused(swarmdrop, keydir, drop_dir, published, static_server, tmp_path):
    v1_timestamp = (published / "metadata" / "timestamp.json").read_bytes()
    pack_version_2(swarmdrop, drop_dir, keydir, published)
    srv = static_server(published)

    client = new_client_dir(tmp_path, published)
    make_updater(client, srv.url).refresh()
    assert Metadata[Timestamp].from_file(str(client / "metadata" / "timestamp.json")).signed.version == 2

    # The server (or a man in the middle) now serves the old timestamp.
    (published / "metadata" / "timestamp.json").write_bytes(v1_timestamp)
    with pytest.raises(exceptions.BadVersionNumberError) as excinfo:
        make_updater(client, srv.url).refresh()
    assert_exact(excinfo, exceptions.BadVersionNumberError)


def test_targets_rollback_under_new_name_is_refused(swarmdrop, keydir, drop_dir, published, static_server, tmp_path):
    pack_version_2(swarmdrop, drop_dir, keydir, published)
    md = published / "metadata"
    shutil.copyfile(md / "1.targets.json", md / "2.targets.json")
    srv = static_server(published)

    # Which check fires first depends on what snapshot records for targets.json:
    # with a length and/or hashes the bytes mismatch first, otherwise the
    # version inside the file (1) does not match the snapshot's (2).
    snap = Metadata[Snapshot].from_file(str(md / "2.snapshot.json")).signed
    meta = snap.meta["targets.json"]
    assert meta.version == 2
    expected = (
        exceptions.LengthOrHashMismatchError
        if (meta.hashes or meta.length is not None)
        else exceptions.BadVersionNumberError
    )

    client = new_client_dir(tmp_path, published)
    with pytest.raises(exceptions.RepositoryError) as excinfo:
        make_updater(client, srv.url).refresh()
    assert_exact(excinfo, expected)
    assert not (client / "metadata" / "targets.json").exists(), "rolled-back targets must not be persisted"


def test_expired_timestamp_is_refused(swarmdrop, keydir, pristine_drop, static_server, tmp_path):
    out = tmp_path / "published"
    two_days_ago = int(time.time()) - 2 * 86400
    expiries = [*LONG_EXPIRIES]
    expiries[expiries.index("--expires-timestamp") + 1] = "1d"
    swarmdrop.pack(pristine_drop, keydir, out, source_date_epoch=two_days_ago, expiries=expiries)
    srv = static_server(out)

    client = new_client_dir(tmp_path, out)
    with pytest.raises(exceptions.ExpiredMetadataError) as excinfo:
        make_updater(client, srv.url).refresh()
    assert_exact(excinfo, exceptions.ExpiredMetadataError)
    assert "timestamp" in str(excinfo.value)


def test_timestamp_signed_by_unknown_key_is_refused(published, static_server, tmp_path):
    ts_path = published / "metadata" / "timestamp.json"
    ts = Metadata[Timestamp].from_file(str(ts_path))
    ts.signed.version += 1
    ts.signatures.clear()
    ts.sign(CryptoSigner.generate_ed25519())
    ts.to_file(str(ts_path))
    srv = static_server(published)

    client = new_client_dir(tmp_path, published)
    with pytest.raises(exceptions.UnsignedMetadataError) as excinfo:
        make_updater(client, srv.url).refresh()
    assert_exact(excinfo, exceptions.UnsignedMetadataError)


# --------------------------------------------------------------------------
# a second version
# --------------------------------------------------------------------------


def test_second_version_is_picked_up(swarmdrop, keydir, drop_dir, published, static_server, tmp_path):
    srv = static_server(published)
    client = new_client_dir(tmp_path, published)
    updater = make_updater(client, srv.url)
    updater.refresh()
    assert trusted_targets(client).signed.version == 1
    assert updater.get_targetinfo(NEW_ASSET) is None

    new_bytes = pack_version_2(swarmdrop, drop_dir, keydir, published)
    assert not (published / "metadata" / "2.root.json").exists(), "root must stay at version 1"
    assert (published / "metadata" / "1.targets.json").is_file(), "old targets metadata must stay published"

    updater = make_updater(client, srv.url)
    updater.refresh()
    trusted = trusted_targets(client).signed
    assert trusted.version == 2, f"client trusts targets v{trusted.version} after re-pack, want 2"
    assert NEW_ASSET in trusted.targets

    info = updater.get_targetinfo(NEW_ASSET)
    assert info is not None
    local = updater.download_target(info)
    assert Path(local).read_bytes() == new_bytes

    # An unchanged asset is still served and verifies under v2.
    old = updater.get_targetinfo("checkout/index.html")
    assert old is not None
    assert Path(updater.download_target(old)).read_bytes() == (drop_dir / "checkout/index.html").read_bytes()


def test_root_json_is_latest_root(published):
    md = published / "metadata"
    assert (md / "root.json").read_bytes() == (md / "1.root.json").read_bytes()
    for unversioned in ("snapshot.json", "targets.json"):
        assert not (md / unversioned).exists(), f"consistent snapshots: unexpected unversioned {unversioned}"
    root = read_json(md / "1.root.json")["signed"]
    assert root["consistent_snapshot"] is True
    assert root["version"] == 1
