"""libtorrent (rasterbar) reads swarmdrop's torrents and downloads through BEP 19 webseeds."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import libtorrent as lt
import pytest

from sd_interop import (
    BULK_DROP_PATH,
    P2P_CLASSES,
    flip_byte,
    signed_targets,
    target_file_path,
)

TRACKERS = ("http://127.0.0.1:9/announce", "http://127.0.0.1:10/announce")
WEBSEED_BASE = "http://127.0.0.1:11/"
DOWNLOAD_TIMEOUT_S = 60.0
HASH_FAIL_TIMEOUT_S = 30.0
POLL_S = 0.1


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def torrents_of(published: Path) -> list[Path]:
    return sorted((published / "torrents").glob("*.torrent"))


def p2p_targets(published: Path) -> dict[str, dict]:
    """drop path -> target info, for targets that carry custom.p2p."""
    return {
        path: info
        for path, info in signed_targets(published).items()
        if "p2p" in info.get("custom", {})
    }


def lt_tiers(torrent: Path) -> list[list[str]]:
    """announce-list as libtorrent reads it, grouped by tier."""
    atp = lt.load_torrent_file(str(torrent))
    tiers: dict[int, list[str]] = {}
    for url, tier in zip(atp.trackers, atp.tracker_tiers or [0] * len(atp.trackers)):
        tiers.setdefault(tier, []).append(url)
    return [tiers[t] for t in sorted(tiers)]


def lt_web_seeds(torrent: Path) -> list[str]:
    """BEP 19 url-list as libtorrent reads it."""
    return list(lt.load_torrent_file(str(torrent)).url_seeds)


def new_session() -> lt.session:
    """A loopback-only, TCP-only session with every discovery mechanism off."""
    return lt.session(
        {
            "listen_interfaces": "127.0.0.1:0",
            "outgoing_interfaces": "127.0.0.1",
            "enable_outgoing_utp": False,
            "enable_incoming_utp": False,
            "enable_dht": False,
            "enable_lsd": False,
            "enable_upnp": False,
            "enable_natpmp": False,
            "webtorrent_stun_server": "",
            "urlseed_wait_retry": 1,
            "alert_mask": lt.alert_category.error | lt.alert_category.status | lt.alert_category.storage,
        }
    )


def add_torrent(ses: lt.session, torrent: Path, save_path: Path) -> lt.torrent_handle:
    atp = lt.load_torrent_file(str(torrent))
    atp.trackers = []  # never announce anywhere; the webseed is the only source
    atp.save_path = str(save_path)
    atp.flags &= ~lt.torrent_flags.auto_managed
    atp.flags &= ~lt.torrent_flags.paused
    atp.flags |= lt.torrent_flags.disable_dht | lt.torrent_flags.disable_lsd | lt.torrent_flags.disable_pex
    return ses.add_torrent(atp)


def pack_with_webseed(swarmdrop, drop: Path, keydir: Path, static_server, tmp_path: Path):
    """Start a loopback server on an empty dir, then pack into that dir with --webseed <server>."""
    out = tmp_path / "served"
    out.mkdir()
    srv = static_server(out)
    swarmdrop.pack(drop, keydir, out, "--webseed", srv.url)
    info = signed_targets(out)[BULK_DROP_PATH]
    torrent = out / info["custom"]["p2p"]["torrent"]
    assert torrent.is_file(), f"bulk torrent {torrent} missing"
    return out, srv, info, torrent


def alert_summary(alerts: list) -> str:
    return "\n".join(f"  {type(a).__name__}: {a.message()}" for a in alerts[-20:]) or "  (none)"


# --------------------------------------------------------------------------
# metadata agreement
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tracked_published(swarmdrop, keydir, pristine_drop, tmp_path_factory) -> Path:
    """PUBLISHED packed with two trackers and a webseed (nothing is contacted)."""
    out = tmp_path_factory.mktemp("tracked") / "published"
    extra = []
    for t in TRACKERS:
        extra += ["--tracker", t]
    swarmdrop.pack(pristine_drop, keydir, out, *extra, "--webseed", WEBSEED_BASE)
    return out


def test_one_torrent_per_p2p_target(pristine_published):
    targets = signed_targets(pristine_published)
    expected = {}
    for path, info in targets.items():
        cls = info["custom"]["class"]
        if cls in P2P_CLASSES:
            assert "p2p" in info["custom"], f"{path} (class {cls}) has no custom.p2p"
            expected[info["custom"]["p2p"]["infohash"]] = path
        else:
            assert "p2p" not in info["custom"], f"{path} (class {cls}) must not have custom.p2p"
    # torrents/<infohash>.<first 16 hex of the torrent's sha256>.torrent
    got = {p.name.split(".")[0] for p in torrents_of(pristine_published)}
    assert got == set(expected), (
        f"torrents/ does not match p2p targets:\n"
        f"  torrents without target: {sorted(got - set(expected))}\n"
        f"  targets without torrent: {sorted(expected[i] for i in set(expected) - got)}"
    )
    assert BULK_DROP_PATH in expected.values()


def test_libtorrent_agrees_with_inspect(swarmdrop, tracked_published, pristine_published):
    torrents = torrents_of(tracked_published)
    assert torrents, "no torrents published"
    pristine_ih = {p.name.split(".")[0] for p in torrents_of(pristine_published)}
    for path in torrents:
        ti = lt.torrent_info(str(path))
        j = swarmdrop.inspect_json(path)
        ih = str(ti.info_hashes().v1)
        where = f"{path.name}"
        assert j.get("kind") == "torrent", f"{where}: kind {j.get('kind')!r}"
        assert j["infohash"] == ih, f"{where}: inspect infohash {j['infohash']} != libtorrent {ih}"
        assert path.name.split(".")[0] == ih, f"{where}: file name does not start with libtorrent's v1 infohash {ih}"
        assert ih in pristine_ih, f"{where}: infohash must not depend on --tracker/--webseed"
        assert j["name"] == ti.name(), f"{where}: name {j['name']!r} != {ti.name()!r}"
        assert j["length"] == ti.total_size(), f"{where}: length {j['length']} != {ti.total_size()}"
        assert j["piece_length"] == ti.piece_length(), f"{where}: piece_length {j['piece_length']} != {ti.piece_length()}"
        assert j["piece_count"] == ti.num_pieces(), f"{where}: piece_count {j['piece_count']} != {ti.num_pieces()}"
        tiers = lt_tiers(path)
        assert j["announce_list"] == tiers, f"{where}: announce_list {j['announce_list']} != libtorrent {tiers}"
        flat = [u for tier in j["announce_list"] for u in tier]
        assert sorted(flat) == sorted(TRACKERS), f"{where}: trackers {flat} != {list(TRACKERS)}"
        lt_seeds = lt_web_seeds(path)
        assert j["url_list"] == lt_seeds, f"{where}: url_list {j['url_list']} != libtorrent {lt_seeds}"
        assert isinstance(j["magnet"], str) and j["magnet"].startswith("magnet:?")
        assert f"xt=urn:btih:{ih}" in j["magnet"].lower(), f"{where}: magnet {j['magnet']!r}"
        # The magnet must round-trip through libtorrent to the same infohash.
        assert str(lt.parse_magnet_uri(j["magnet"]).info_hashes.v1) == ih


def test_torrents_match_targets_and_piece_hashes(tracked_published, pristine_drop):
    p2p = p2p_targets(tracked_published)
    assert p2p, "no p2p targets"
    for drop_path, info in sorted(p2p.items()):
        meta = info["custom"]["p2p"]
        torrent = tracked_published / meta["torrent"]
        ti = lt.torrent_info(str(torrent))
        assert str(ti.info_hashes().v1) == meta["infohash"], f"{drop_path}: custom.p2p.infohash mismatch"
        assert ti.piece_length() == meta["piece_length"], f"{drop_path}: custom.p2p.piece_length mismatch"
        assert ti.total_size() == info["length"], f"{drop_path}: torrent size {ti.total_size()} != {info['length']}"
        assert ti.num_files() == 1, f"{drop_path}: expected a single-file torrent"
        magnet_ih = str(lt.parse_magnet_uri(meta["magnet"]).info_hashes.v1)
        assert magnet_ih == meta["infohash"], f"{drop_path}: custom.p2p.magnet infohash {magnet_ih}"

        expected_url = WEBSEED_BASE + target_file_path(Path("."), drop_path, info).as_posix()
        seeds = lt_web_seeds(torrent)
        assert seeds == [expected_url], f"{drop_path}: url-list {seeds}, want [{expected_url!r}]"

        # Independently recompute v1 piece hashes from the source asset.
        data = (pristine_drop / drop_path).read_bytes()
        plen = ti.piece_length()
        assert ti.num_pieces() == -(-len(data) // plen)
        for i in range(ti.num_pieces()):
            want = hashlib.sha1(data[i * plen:(i + 1) * plen]).digest()
            got = bytes(ti.hash_for_piece(i))
            assert got == want, f"{drop_path}: piece {i} hash mismatch"


# --------------------------------------------------------------------------
# real downloads over loopback webseeds
# --------------------------------------------------------------------------


def test_webseed_download_completes(swarmdrop, keydir, pristine_drop, static_server, tmp_path):
    out, srv, info, torrent = pack_with_webseed(swarmdrop, pristine_drop, keydir, static_server, tmp_path)
    ti = lt.torrent_info(str(torrent))
    rel = target_file_path(Path("."), BULK_DROP_PATH, info).as_posix()
    assert lt_web_seeds(torrent) == [srv.url + rel]
    assert ti.num_pieces() > 1, "bulk asset should span several pieces"

    save = tmp_path / "download"
    save.mkdir()
    ses = new_session()
    h = add_torrent(ses, torrent, save)
    alerts: list = []
    deadline = time.monotonic() + DOWNLOAD_TIMEOUT_S
    st = h.status()
    while not st.is_seeding and time.monotonic() < deadline:
        alerts += ses.pop_alerts()
        time.sleep(POLL_S)
        st = h.status()
    alerts += ses.pop_alerts()
    assert st.is_seeding, (
        f"libtorrent did not finish within {DOWNLOAD_TIMEOUT_S}s: state={st.state} "
        f"progress={st.progress:.3f} errc={st.errc.message() if st.errc.value() else ''}\n"
        f"HTTP requests: {srv.requests()[-5:]}\nalerts:\n{alert_summary(alerts)}"
    )
    hash_fails = [a for a in alerts if isinstance(a, lt.hash_failed_alert)]
    assert not hash_fails, f"unexpected hash failures: {alert_summary(hash_fails)}"

    got = (save / ti.name()).read_bytes()
    assert got == (pristine_drop / BULK_DROP_PATH).read_bytes(), "downloaded bulk file differs from source"
    fetched = {p for (_m, p, status, _r) in srv.requests() if status in (200, 206)}
    assert "/" + rel in fetched, f"libtorrent never fetched the webseed URL; requests: {srv.requests()}"


def test_webseed_flipped_byte_never_completes_piece(swarmdrop, keydir, pristine_drop, static_server, tmp_path):
    out, srv, info, torrent = pack_with_webseed(swarmdrop, pristine_drop, keydir, static_server, tmp_path)
    ti = lt.torrent_info(str(torrent))
    bad_piece = 1 if ti.num_pieces() > 1 else 0
    served = target_file_path(out, BULK_DROP_PATH, info)
    flip_byte(served, bad_piece * ti.piece_length() + 7)

    save = tmp_path / "download"
    save.mkdir()
    ses = new_session()
    h = add_torrent(ses, torrent, save)
    alerts: list = []
    failed: set[int] = set()
    deadline = time.monotonic() + HASH_FAIL_TIMEOUT_S
    while bad_piece not in failed and time.monotonic() < deadline:
        new = ses.pop_alerts()
        alerts += new
        failed |= {a.piece_index for a in new if isinstance(a, lt.hash_failed_alert)}
        if h.status().is_seeding:
            break
        time.sleep(POLL_S)

    assert bad_piece in failed, (
        f"no hash_failed_alert for piece {bad_piece} within {HASH_FAIL_TIMEOUT_S}s "
        f"(failed pieces: {sorted(failed)})\nalerts:\n{alert_summary(alerts)}"
    )
    assert failed == {bad_piece}, f"only piece {bad_piece} was corrupted, but hash failed for {sorted(failed)}"
    # Give libtorrent a short, bounded chance to (wrongly) accept the piece.
    settle = time.monotonic() + 2.0
    while time.monotonic() < settle:
        assert not h.have_piece(bad_piece), f"libtorrent accepted corrupted piece {bad_piece}"
        time.sleep(POLL_S)
    st = h.status()
    assert not st.is_seeding, "torrent completed although one piece is corrupted on the webseed"
    assert not h.have_piece(bad_piece)
