"""`swarmdrop tracker` against independent clients: libtorrent, aria2c and hand-built requests.

* libtorrent seeder + libtorrent leecher that only know each other through our
  tracker (HTTP, UDP, and a private drop whose announces carry a gateway token)
  move swarmdrop's bulk torrent; refused tokens show up in libtorrent's
  ``tracker_error_alert``, the HTTP ``failure reason`` and ``/metrics``.
* aria2c announces to the tracker and downloads from the libtorrent seeder.
* Hand-built HTTP announces/scrapes (binary info hashes, BEP 23/48) and BEP 15
  UDP packets (``struct``), malformed requests, a 10,000-peer flood against
  ``max_peers_per_swarm``, per-address rate limits.
* Standard Webhooks deliveries, HMAC checked by hand.

Every process binds 127.0.0.1 port 0; clients use their own 127.x source
addresses so that the peers the tracker hands out can be told apart.  See
``tracker_support`` for what libtorrent needs on loopback.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import socket
import struct
import subprocess
import time
import tomllib
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import libtorrent as lt
import pytest
from eth_account import Account

from gateway_support import (
    flip_token_char,
    parse_rfc3339,
    paseto_message,
    start_gateway,
    utcnow,
    write_config,
)
from sd_interop import BULK_DROP_PATH, signed_targets
from tracker_support import (
    ACTION_ANNOUNCE,
    ACTION_CONNECT,
    ACTION_ERROR,
    UDP_PROTOCOL_ID,
    AlertLog,
    Tracker,
    WebhookReceiver,
    compact_peers,
    lt_add,
    lt_session,
    metric_samples,
    metric_sum,
    parse_udp_announce,
    pct,
    pct_all,
    peer_id,
    start_tracker,
    udp_announce_packet,
    verify_webhook,
    wait_until,
    write_tracker_config,
)

DOWNLOAD_TIMEOUT_S = 60.0
ANNOUNCE_TIMEOUT_S = 20.0
EVENT_TIMEOUT_S = 10.0

SEED_IP, LEECH_IP, ARIA_IP = "127.0.0.2", "127.0.0.3", "127.0.0.4"

# Gateway (private drops).
DOMAIN = "drop.example"
URI = "https://drop.example/login"
CHAIN_ID = 1
DROP = "genesis-mint"
CLASSES = ["checkout", "keyframe", "bulk"]

# Generous limits so only the rate-limit test ever meets the limiter.
NO_RATE_LIMIT = {"per_ip_per_second": 1_000_000.0, "per_ip_burst": 1_000_000}

WEBHOOK_SECRET = "interop-webhook-secret-9f2c"

# Hand-built info hashes: every reserved query character and bytes >= 0x80.
IH_BINARY = bytes([0x80, 0xFF, 0x26, 0x3D, 0x3F, 0x25, 0x2B, 0x2F, 0x23, 0x20,
                   0x00, 0x7F, 0xFE, 0xC3, 0xA9, 0x41, 0x7E, 0x2E, 0x2D, 0x5F])  # & = ? % + / # space ~ . - _
assert len(IH_BINARY) == 20
IH_EMPTY = hashlib.sha1(b"swarmdrop interop: never announced").digest()
IH_UDP = hashlib.sha1(b"swarmdrop interop: udp").digest()
IH_FLOOD = hashlib.sha1(b"swarmdrop interop: flood").digest()
IH_OTHER = hashlib.sha1(b"swarmdrop interop: other").digest()
IH_UNKNOWN = hashlib.sha1(b"swarmdrop interop: unknown").digest()
FLOOD_PEERS = 10_000
FLOOD_CAP = 1_000

ANNOUNCES = "swarmdrop_tracker_announces_total"
REFUSALS = "swarmdrop_tracker_refusals_total"
SCRAPES = "swarmdrop_tracker_scrapes_total"


# --------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------


@dataclass
class Bulk:
    torrent: Path
    infohash: str  # v1, 40 hex
    name: str  # file name inside the (single-file) torrent
    seed_dir: Path  # holds <name> with the asset, for the seeder
    data: bytes

    @property
    def ih(self) -> bytes:
        return bytes.fromhex(self.infohash)


@pytest.fixture(scope="module")
def bulk(pristine_published, pristine_drop, tmp_path_factory) -> Bulk:
    """swarmdrop's own (v1) torrent of the bulk asset, and a seed directory for it."""
    info = signed_targets(pristine_published)[BULK_DROP_PATH]
    torrent = pristine_published / info["custom"]["p2p"]["torrent"]
    ti = lt.torrent_info(str(torrent))
    ih = str(ti.info_hashes().v1)
    assert ih == info["custom"]["p2p"]["infohash"], f"libtorrent infohash {ih} != custom.p2p {info['custom']['p2p']}"
    assert ti.num_files() == 1 and ti.num_pieces() > 1, "bulk torrent should be one file of several pieces"
    seeds = list(lt.load_torrent_file(str(torrent)).url_seeds)
    assert not seeds, f"pristine bulk torrent has webseeds: {seeds}"
    seed_dir = tmp_path_factory.mktemp("seed")
    shutil.copyfile(pristine_drop / BULK_DROP_PATH, seed_dir / ti.name())
    return Bulk(torrent, ih, ti.name(), seed_dir, (pristine_drop / BULK_DROP_PATH).read_bytes())


@pytest.fixture
def trackers(swarmdrop_bin, tmp_path):
    """Factory: ``trackers(*flags, config={...})`` starts a tracker; all stop at teardown."""
    started: list[Tracker] = []

    def _start(*args: str, config: dict | None = None) -> Tracker:
        cfg = write_tracker_config(tmp_path / f"tracker-{len(started)}.toml", config) if config is not None else None
        t = start_tracker(swarmdrop_bin, *args, config=cfg)
        started.append(t)
        return t

    yield _start
    for t in started:
        t.close()


@pytest.fixture
def sessions():
    """Factory: ``sessions(ip)`` makes a libtorrent session; all are paused and dropped at teardown."""
    made: list = []

    def _new(ip: str):
        s = lt_session(ip)
        made.append(s)
        return s

    yield _new
    for s in made:
        s.pause()
    made.clear()


@pytest.fixture(scope="module")
def proto_tracker(swarmdrop_bin, tmp_path_factory):
    """One tracker for the hand-built protocol tests (the flood swarm is capped at 1000;
    the per-address cap is off so that one loopback address can reach it)."""
    d = tmp_path_factory.mktemp("proto-tracker")
    config = write_tracker_config(d / "tracker.toml", {
        "known_infohashes": [h.hex() for h in (IH_BINARY, IH_EMPTY, IH_UDP, IH_FLOOD, IH_OTHER)],
        "max_peers_per_swarm": FLOOD_CAP,
        "max_peers_per_address": 0,
        "rate_limit": NO_RATE_LIMIT,
    })
    t = start_tracker(swarmdrop_bin, config=config)
    yield t
    t.close()


GATEWAY_ADMIN_TOKEN = "interop-admin-token-5d1e"


def _gateway(swarmdrop_bin, keydir, d: Path, lifetime: str, drop: str = DROP):
    config = write_config(d / "gateway.toml", {
        "domain": DOMAIN,
        "uri": URI,
        "chain_id": CHAIN_ID,
        "drop": drop,
        "signing_key": keydir / "timestamp.key",
        "token_lifetime": lifetime,
        "classes": CLASSES,
        "admin_token": GATEWAY_ADMIN_TOKEN,
    })
    return start_gateway(swarmdrop_bin, config, domain=DOMAIN, uri=URI, chain_id=CHAIN_ID,
                         stdout_path=d / "stdout.log", admin_token=GATEWAY_ADMIN_TOKEN)


@pytest.fixture(scope="module")
def gateway(swarmdrop_bin, keydir, tmp_path_factory):
    gw = _gateway(swarmdrop_bin, keydir, tmp_path_factory.mktemp("gateway"), "10m")
    yield gw
    gw.close()


@pytest.fixture(scope="module")
def other_drop_gateway(swarmdrop_bin, keydir, tmp_path_factory):
    """Same signing key, tokens for another drop."""
    gw = _gateway(swarmdrop_bin, keydir, tmp_path_factory.mktemp("other-gateway"), "10m", drop="another-drop")
    yield gw
    gw.close()


@pytest.fixture(scope="module")
def short_gateway(swarmdrop_bin, keydir, tmp_path_factory):
    """Same signing key, tokens that live one second."""
    gw = _gateway(swarmdrop_bin, keydir, tmp_path_factory.mktemp("short-gateway"), "1s")
    yield gw
    gw.close()


def private_config(bulk: Bulk, keydir: Path) -> dict:
    return {
        "known_infohashes": [bulk.infohash],
        "rate_limit": NO_RATE_LIMIT,
        # leeway 0: a one-second token is expired two seconds later.
        "private": {"drop": DROP, "gateway_keys": [keydir / "timestamp.pub"], "leeway": 0},
    }


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def transfer(bulk: Bulk, sessions, tmp_path: Path, seed_url: str, leech_url: str) -> AlertLog:
    """Seeder announces first; the leecher must find it through the tracker and finish."""
    seeder, leecher = sessions(SEED_IP), sessions(LEECH_IP)
    log = AlertLog({"seeder": seeder, "leecher": leecher})
    hs = lt_add(seeder, bulk.torrent, bulk.seed_dir, [seed_url])
    announced = wait_until(
        lambda: hs.status().is_seeding and (log.of("seeder", lt.tracker_reply_alert) or log.of("seeder", lt.tracker_error_alert)),
        ANNOUNCE_TIMEOUT_S, on_poll=log.pump,
    )
    errors = log.of("seeder", lt.tracker_error_alert)
    assert announced and not errors, (
        f"seeder did not announce to {seed_url[:120]} (seeding={hs.status().is_seeding})\n"
        f"tracker errors: {[a.message for a in errors]}\nalerts:\n{log.summary()}"
    )

    save = tmp_path / "leech"
    save.mkdir()
    hl = lt_add(leecher, bulk.torrent, save, [leech_url])
    done = wait_until(lambda: hl.status().is_seeding, DOWNLOAD_TIMEOUT_S, on_poll=log.pump)
    st = hl.status()
    assert done, (
        f"leecher did not finish within {DOWNLOAD_TIMEOUT_S}s: state={st.state} progress={st.progress:.3f} "
        f"peers={st.num_peers}\nalerts:\n{log.summary()}"
    )
    assert (save / bulk.name).read_bytes() == bulk.data, "downloaded bulk asset differs from the source"
    replies = log.of("leecher", lt.tracker_reply_alert)
    assert replies and max(a.num_peers or 0 for a in replies) >= 1, (
        f"the leecher never got a peer from the tracker:\n{log.summary()}"
    )
    connected = {a.endpoint[0] for a in log.of("leecher", lt.peer_connect_alert) if a.endpoint}
    assert SEED_IP in connected, f"leecher connected to {connected}, not the seeder {SEED_IP}:\n{log.summary()}"
    return log


def wait_scrape(tracker: Tracker, ih: bytes, pred, timeout: float = ANNOUNCE_TIMEOUT_S,
                path: str = "/scrape") -> dict | None:
    last: list = [None]

    def probe():
        last[0] = tracker.scrape_counts(ih, path=path)
        return last[0] is not None and pred(last[0])

    return last[0] if wait_until(probe, timeout, poll=0.2) else pytest.fail(
        f"scrape of {ih.hex()} never satisfied the condition; last: {last[0]}", pytrace=False
    )


def refusal_pattern(kind: str) -> str:
    return {
        "missing": r"token[ _-]?missing|missing[ _-]?token|no token",
        "forged": r"bad_signature",
        "expired": r"expired",
        "wrong_drop": r"wrong_drop",
    }[kind]


def assert_failure(r, pattern: str | None = None) -> str:
    """HTTP 200 with a bencoded ``failure reason`` (matching ``pattern`` if given)."""
    assert r.status == 200, f"tracker errors must be HTTP 200 + failure reason, got {r}"
    reason = r.failure()
    assert reason, f"no failure reason: {r}"
    if pattern:
        assert re.search(pattern, reason, re.I), f"failure reason {reason!r} does not match /{pattern}/"
    return reason


def assert_announce_ok(r) -> dict:
    assert r.status == 200, str(r)
    d = r.bdict()
    assert b"failure reason" not in d, f"announce refused: {d[b'failure reason']!r} ({r.path[:120]})"
    for key in (b"interval", b"min interval", b"complete", b"incomplete"):
        assert isinstance(d.get(key), int), f"announce answer lacks integer {key!r}: {d!r}"
    assert 0 < d[b"min interval"] <= d[b"interval"], d
    assert isinstance(d.get(b"peers"), bytes), f"compact=1 but peers is not a byte string: {d!r}"
    if b"peers6" in d:
        assert isinstance(d[b"peers6"], bytes) and len(d[b"peers6"]) % 18 == 0, d
    return d


def fresh_token(gw) -> str:
    body = gw.token(Account.create())
    assert body["token"].startswith("v4.public."), body
    return body["token"]


# --------------------------------------------------------------------------
# 1, 2. libtorrent <-> libtorrent through the tracker
# --------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["http", "udp"])
def test_libtorrent_transfer_through_tracker(bulk, trackers, sessions, tmp_path, protocol):
    t = trackers("--infohash", bulk.infohash)
    url = t.http_url("/announce") if protocol == "http" else t.udp_url("/announce")
    transfer(bulk, sessions, tmp_path, url, url)

    # The leecher's `completed` announce turns it into a second seeder.
    counts = wait_scrape(t, bulk.ih, lambda c: c.get("complete") == 2)
    assert counts.get("incomplete") == 0 and counts.get("downloaded", 0) >= 1, counts
    m = t.metrics()
    assert metric_sum(m, ANNOUNCES, protocol=protocol) >= 3, (
        f"want >= 3 {protocol} announces counted:\n" + "\n".join(ln for ln in m.splitlines() if ANNOUNCES in ln)
    )


def test_unlisted_infohash_is_refused_without_open(bulk, trackers, sessions):
    t = trackers("--infohash", IH_OTHER.hex())
    r = t.announce(bulk.ih, peer_id(1), 6881, source=SEED_IP)
    assert_failure(r, r"unknown infohash")
    with t.udp(SEED_IP) as u:
        rep = u.announce_raw(u.connect(), bulk.ih, peer_id(1), 6881)
        assert rep.action == ACTION_ERROR and re.search(r"unknown infohash", rep.error, re.I), str(rep)
    # libtorrent sees the same failure reason.
    ses = sessions(SEED_IP)
    log = AlertLog({"s": ses})
    lt_add(ses, bulk.torrent, bulk.seed_dir, [t.http_url()])
    assert wait_until(lambda: log.of("s", lt.tracker_error_alert), ANNOUNCE_TIMEOUT_S, on_poll=log.pump), log.summary()
    fr = log.of("s", lt.tracker_error_alert)[0].failure_reason
    assert re.search(r"unknown infohash", fr, re.I), f"libtorrent failure_reason {fr!r}"


def test_open_tracker_serves_any_infohash(trackers):
    t = trackers("--open")
    ih = hashlib.sha1(b"anything at all").digest()
    assert_announce_ok(t.announce(ih, peer_id(1), 6881, left=0, source="127.0.0.11"))
    d = assert_announce_ok(t.announce(ih, peer_id(2), 6882, left=5, source="127.0.0.12"))
    assert ("127.0.0.11", 6881) in compact_peers(d[b"peers"]), d
    with t.udp("127.0.0.13") as u:
        a = u.announce(u.connect(), ih, peer_id(3), 6883, left=5)
        assert ("127.0.0.11", 6881) in a["peers"], a


# --------------------------------------------------------------------------
# 3. private drop: gateway tokens
# --------------------------------------------------------------------------


def test_private_drop_transfer_with_gateway_tokens(bulk, keydir, gateway, trackers, sessions, tmp_path):
    t = trackers("--infohash", bulk.infohash, config=private_config(bulk, keydir))
    seed_tok, leech_tok = fresh_token(gateway), fresh_token(gateway)
    transfer(bulk, sessions, tmp_path, t.http_url(f"/announce/{seed_tok}"), t.http_url(f"/announce/{leech_tok}"))
    counts = wait_scrape(t, bulk.ih, lambda c: c.get("complete") == 2, path=f"/scrape/{seed_tok}")
    assert counts.get("incomplete") == 0, counts
    # A private tracker does not scrape for strangers either.
    assert_failure(t.scrape([bulk.ih]), refusal_pattern("missing"))


@pytest.mark.parametrize("kind", ["missing", "forged", "expired", "wrong_drop"])
def test_private_drop_refuses_bad_tokens(bulk, keydir, request, trackers, sessions, kind):
    t = trackers("--infohash", bulk.infohash, config=private_config(bulk, keydir))
    if kind == "missing":
        path = "/announce"
    elif kind == "forged":
        path = "/announce/" + flip_token_char(fresh_token(request.getfixturevalue("gateway")))
    elif kind == "wrong_drop":
        path = "/announce/" + fresh_token(request.getfixturevalue("other_drop_gateway"))
    else:
        tok = fresh_token(request.getfixturevalue("short_gateway"))
        exp = parse_rfc3339(paseto_message(tok)["exp"])
        # A deliberate wait for the token to expire (not for readiness): bounded, ~2 s.
        assert wait_until(lambda: utcnow() >= exp + timedelta(seconds=1), 5.0, poll=0.1)
        path = "/announce/" + tok
    pattern = refusal_pattern(kind)
    before = metric_sum(t.metrics(), REFUSALS)

    # Direct HTTP GET: the failure reason names the problem.
    reason = assert_failure(t.announce(bulk.ih, peer_id(7), 6881, path=path, source=LEECH_IP), pattern)

    # libtorrent: tracker_error_alert carries the same failure reason; no peers come back.
    ses = sessions(SEED_IP)
    log = AlertLog({"s": ses})
    lt_add(ses, bulk.torrent, bulk.seed_dir, [t.http_url(path)])
    got = wait_until(lambda: log.of("s", lt.tracker_error_alert) or log.of("s", lt.tracker_reply_alert),
                     ANNOUNCE_TIMEOUT_S, on_poll=log.pump)
    assert got, f"libtorrent never heard back from the tracker:\n{log.summary()}"
    assert not log.of("s", lt.tracker_reply_alert), f"announce with {kind} token was accepted:\n{log.summary()}"
    fr = log.of("s", lt.tracker_error_alert)[0].failure_reason
    assert re.search(pattern, fr, re.I), f"libtorrent failure_reason {fr!r} (direct GET said {reason!r})"

    # UDP with the same path as BEP 41 URL data (split over 255-byte options).
    with t.udp(LEECH_IP) as u:
        rep = u.announce_raw(u.connect(), bulk.ih, peer_id(8), 6881, url_data=None if kind == "missing" else path)
        assert rep.action == ACTION_ERROR, f"UDP announce with {kind} token: {rep}"
        assert re.search(pattern, rep.error, re.I), f"UDP error {rep.error!r} does not match /{pattern}/"

    m = t.metrics()
    after = metric_sum(m, REFUSALS)
    assert after - before >= 3, f"refusals went {before} -> {after}; want +3 (GET, libtorrent, UDP)"
    word = {"missing": "missing", "forged": "bad_signature", "expired": "expired", "wrong_drop": "wrong_drop"}[kind]
    hits = [(lab, v) for lab, v in metric_samples(m, REFUSALS) if word in lab.get("reason", "")]
    assert hits and sum(v for _, v in hits) >= 3, (
        f"no {REFUSALS} sample with a reason naming {word!r} and count >= 3:\n"
        + "\n".join(ln for ln in m.splitlines() if REFUSALS in ln)
    )
    good = fresh_token(request.getfixturevalue("gateway"))
    assert t.scrape_counts(bulk.ih, path=f"/scrape/{good}") in (None, {"complete": 0, "incomplete": 0, "downloaded": 0}), (
        "a refused announce joined the swarm"
    )


def test_private_drop_udp_token_as_url_data(bulk, keydir, gateway, trackers):
    """libtorrent cuts BEP 41 URL data at 255 bytes (a token is ~500), so this is by hand."""
    t = trackers("--infohash", bulk.infohash, config=private_config(bulk, keydir))
    tok = fresh_token(gateway)
    assert len("/announce/" + tok) > 255, "token fits one option; the split is not exercised"
    with t.udp(SEED_IP) as u:
        cid = u.connect()
        a = u.announce(cid, bulk.ih, peer_id(1), 6881, left=0, url_data=f"/announce/{tok}")
        assert a["seeders"] == 1, a
    with t.udp(LEECH_IP) as u:
        a = u.announce(u.connect(), bulk.ih, peer_id(2), 6882, left=10, url_data=f"/announce/{tok}")
        assert (SEED_IP, 6881) in a["peers"], a
    # HTTP with the token in the path agrees.
    d = assert_announce_ok(t.announce(bulk.ih, peer_id(3), 6883, left=10, path=f"/announce/{tok}", source="127.0.0.14"))
    assert (SEED_IP, 6881) in compact_peers(d[b"peers"]), d


def fresh_pass(gw) -> str:
    body = gw.token(Account.create())
    tracker_pass = body.get("tracker_pass", "")
    assert tracker_pass.startswith("v4.public."), body
    assert len("/announce/" + tracker_pass) <= 255, f"pass is {len(tracker_pass)} bytes; one BEP 41 option holds 255"
    return tracker_pass


def test_private_drop_udp_transfer_with_tracker_passes(bulk, keydir, gateway, trackers, sessions, tmp_path):
    """libtorrent sends one 255-byte BEP 41 option: the gateway's compact pass fits it."""
    t = trackers("--infohash", bulk.infohash, config=private_config(bulk, keydir))
    seed_pass, leech_pass = fresh_pass(gateway), fresh_pass(gateway)
    transfer(bulk, sessions, tmp_path, t.udp_url(f"/announce/{seed_pass}"), t.udp_url(f"/announce/{leech_pass}"))
    counts = wait_scrape(t, bulk.ih, lambda c: c.get("complete") == 2, path=f"/scrape/{seed_pass}")
    assert counts.get("incomplete") == 0, counts
    # A tampered pass is refused over UDP with a reason.
    with t.udp(LEECH_IP) as u:
        tampered = flip_token_char(fresh_pass(gateway))
        rep = u.announce_raw(u.connect(), bulk.ih, peer_id(9), 6890, url_data=f"/announce/{tampered}")
        assert rep.action == ACTION_ERROR and re.search(refusal_pattern("forged"), rep.error, re.I), str(rep)


def test_tracker_pass_for_another_drop_is_refused(bulk, keydir, other_drop_gateway, trackers):
    t = trackers("--infohash", bulk.infohash, config=private_config(bulk, keydir))
    with t.udp(LEECH_IP) as u:
        path = "/announce/" + fresh_pass(other_drop_gateway)
        rep = u.announce_raw(u.connect(), bulk.ih, peer_id(9), 6891, url_data=path)
        assert rep.action == ACTION_ERROR and re.search(refusal_pattern("wrong_drop"), rep.error, re.I), str(rep)


def test_revoked_tokens_and_passes_stop_announcing(bulk, keydir, gateway, trackers):
    """The tracker polls the gateway's revocation list; revoking a jti ends its token and pass."""
    config = private_config(bulk, keydir)
    config["private"] |= {
        "revocations_url": f"http://127.0.0.1:{gateway.port}/auth/revocations",
        "revocations_every": 1,
    }
    t = trackers("--infohash", bulk.infohash, config=config)
    body = gateway.token(Account.create())
    token, tracker_pass, jti = body["token"], body["tracker_pass"], body["claims"]["jti"]
    assert_announce_ok(t.announce(bulk.ih, peer_id(1), 6881, path=f"/announce/{token}", source=SEED_IP))
    r = gateway.post("/admin/revoke", {"jti": jti}, headers={"Authorization": f"Bearer {GATEWAY_ADMIN_TOKEN}"})
    assert r.status == 200, str(r)

    def refused() -> bool:
        r = t.announce(bulk.ih, peer_id(1), 6881, path=f"/announce/{token}", source=SEED_IP)
        return r.status == 200 and b"failure reason" in r.bdict()

    # Polled every second: the revocation is in force within a few polls.
    assert wait_until(refused, 10.0, poll=0.2), "a revoked token still announces after 10 s"
    assert_failure(t.announce(bulk.ih, peer_id(1), 6881, path=f"/announce/{token}", source=SEED_IP), r"revoked")
    with t.udp(LEECH_IP) as u:
        rep = u.announce_raw(u.connect(), bulk.ih, peer_id(2), 6882, url_data=f"/announce/{tracker_pass}")
        assert rep.action == ACTION_ERROR and re.search(r"revoked", rep.error), str(rep)
    # Other viewers are unaffected.
    assert_announce_ok(t.announce(bulk.ih, peer_id(3), 6883, path=f"/announce/{fresh_token(gateway)}", source=LEECH_IP))
    m = t.metrics()
    assert metric_sum(m, "swarmdrop_tracker_revoked_tokens") >= 1, m
    assert metric_sum(m, "swarmdrop_tracker_revocation_polls_failed_total") == 0, m


# --------------------------------------------------------------------------
# 4. aria2c
# --------------------------------------------------------------------------


def free_port(ip: str) -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def test_aria2c_downloads_from_libtorrent_seeder(bulk, trackers, sessions, tmp_path):
    aria2c = shutil.which("aria2c")
    if aria2c is None:
        pytest.fail("aria2c not found: install the apt package `aria2`", pytrace=False)
    t = trackers("--infohash", bulk.infohash)
    seeder = sessions(SEED_IP)
    log = AlertLog({"seeder": seeder})
    hs = lt_add(seeder, bulk.torrent, bulk.seed_dir, [t.http_url()])
    assert wait_until(lambda: hs.status().is_seeding and log.of("seeder", lt.tracker_reply_alert),
                      ANNOUNCE_TIMEOUT_S, on_poll=log.pump), log.summary()

    out = tmp_path / "aria2"
    port = free_port(ARIA_IP)
    argv = [
        aria2c, f"--dir={out}", f"--bt-tracker={t.http_url()}",
        "--seed-time=0", "--bt-stop-timeout=30",
        "--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false", "--enable-peer-exchange=false",
        f"--interface={ARIA_IP}", f"--listen-port={port}", "--disable-ipv6=true",
        "--summary-interval=0", "--console-log-level=warn", "--file-allocation=none",
        "--bt-tracker-connect-timeout=10", "--bt-tracker-timeout=10",
        str(bulk.torrent),
    ]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    finally:
        log.pump()
    diag = f"command: {' '.join(argv)}\nexit {proc.returncode}\n--- stdout ---\n{proc.stdout[-3000:]}\n--- stderr ---\n{proc.stderr[-2000:]}\nseeder alerts:\n{log.summary()}"
    assert proc.returncode == 0, diag
    got = out / bulk.name
    assert got.is_file() and got.read_bytes() == bulk.data, "aria2c's copy differs from the bulk asset\n" + diag
    peers = {a.endpoint[0] for a in log.of("seeder", lt.peer_connect_alert) if a.endpoint}
    assert ARIA_IP in peers, f"the seeder never saw aria2c ({ARIA_IP}); peers {peers}\n" + diag
    m = t.metrics()
    assert metric_sum(m, ANNOUNCES, protocol="http") >= 2, m


# --------------------------------------------------------------------------
# 5. hand-built HTTP
# --------------------------------------------------------------------------


def test_http_announce_binary_infohash_and_scrape(proto_tracker):
    t = proto_tracker
    a_ip, b_ip = "127.0.0.5", "127.0.0.6"
    # A: every byte %xx (lower-case hex), a seeder.
    a = assert_announce_ok(t.announce(IH_BINARY, peer_id(1), 6001, left=0, encode=pct_all, source=a_ip))
    assert (a[b"complete"], a[b"incomplete"]) == (1, 0), a
    assert compact_peers(a[b"peers"]) == [], f"a lone seeder got peers: {a!r}"
    # B: unreserved bytes raw, the rest %XX (upper-case), a leecher: same swarm.
    b = assert_announce_ok(t.announce(IH_BINARY, peer_id(2), 6002, left=1000, encode=pct, source=b_ip))
    assert (b[b"complete"], b[b"incomplete"]) == (1, 1), b
    assert compact_peers(b[b"peers"]) == [(a_ip, 6001)], f"leecher should get exactly the seeder: {compact_peers(b[b'peers'])}"
    # A again (no event): the seeder now hears of the leecher, at B's source address.
    a2 = assert_announce_ok(t.announce(IH_BINARY, peer_id(1), 6001, left=0, event=None, encode=pct, source=a_ip))
    assert compact_peers(a2[b"peers"]) == [(b_ip, 6002)], compact_peers(a2[b"peers"])

    # BEP 48 scrape, two hashes in one request.
    r = t.scrape([IH_BINARY, IH_EMPTY])
    assert r.status == 200, str(r)
    files = r.bdict().get(b"files")
    assert isinstance(files, dict) and IH_BINARY in files, f"scrape files: {r.bdict()!r}"
    assert files[IH_BINARY] == {b"complete": 1, b"downloaded": 0, b"incomplete": 1}, files[IH_BINARY]
    assert files.get(IH_EMPTY, {b"complete": 0, b"downloaded": 0, b"incomplete": 0}) == {
        b"complete": 0, b"downloaded": 0, b"incomplete": 0}, files
    assert set(files) <= {IH_BINARY, IH_EMPTY}, f"scrape answered hashes not asked for: {list(files)}"

    # B completes, then A stops.
    assert_announce_ok(t.announce(IH_BINARY, peer_id(2), 6002, left=0, downloaded=1000, event="completed", source=b_ip))
    assert t.scrape_counts(IH_BINARY) == {"complete": 2, "downloaded": 1, "incomplete": 0}
    r = t.announce(IH_BINARY, peer_id(1), 6001, left=0, event="stopped", source=a_ip)
    assert r.status == 200 and r.failure() is None, str(r)
    assert t.scrape_counts(IH_BINARY) == {"complete": 1, "downloaded": 1, "incomplete": 0}

    m = t.metrics()
    assert metric_sum(m, ANNOUNCES, protocol="http") >= 5, [ln for ln in m.splitlines() if ANNOUNCES in ln]
    assert metric_sum(m, SCRAPES, protocol="http") >= 1, [ln for ln in m.splitlines() if SCRAPES in ln]


@pytest.mark.parametrize("case", ["info_hash_19_bytes", "info_hash_21_bytes", "missing_port", "non_numeric_left",
                                  "bad_escape", "unknown_infohash"])
def test_http_malformed_announce_is_refused(proto_tracker, case):
    t = proto_tracker
    before = metric_sum(t.metrics(), REFUSALS, protocol="http")
    kw: dict = {"left": 0}
    ih = IH_OTHER
    pattern = None
    if case == "info_hash_19_bytes":
        ih = IH_OTHER[:19]
        pattern = r"info_?hash"
    elif case == "info_hash_21_bytes":
        ih = IH_OTHER + b"\x01"
        pattern = r"info_?hash"
    elif case == "non_numeric_left":
        kw["left"] = "lots"
        pattern = r"left"
    elif case == "unknown_infohash":
        ih = IH_UNKNOWN
        pattern = r"unknown infohash"
    if case == "missing_port":
        r = t.announce(ih, peer_id(9), None, source="127.0.0.15", **kw)
        pattern = r"port"
    elif case == "bad_escape":
        q = f"info_hash=%zz{pct(IH_OTHER[1:])}&peer_id={pct(peer_id(9))}&port=6881&uploaded=0&downloaded=0&left=0&compact=1"
        r = t.get(f"/announce?{q}", source="127.0.0.15")
    else:
        r = t.announce(ih, peer_id(9), 6881, source="127.0.0.15", **kw)
    assert_failure(r, pattern)
    assert metric_sum(t.metrics(), REFUSALS, protocol="http") >= before + 1, "the refusal was not counted"
    # Nothing joined the swarm, and the tracker still answers.
    assert t.scrape_counts(IH_OTHER) in (None, {"complete": 0, "downloaded": 0, "incomplete": 0})
    assert_announce_ok(t.announce(IH_EMPTY, peer_id(10), 6881, left=0, event="stopped", source="127.0.0.15"))


# --------------------------------------------------------------------------
# 5. hand-built UDP
# --------------------------------------------------------------------------


def test_udp_connect_announce_scrape_round_trip(proto_tracker):
    t = proto_tracker
    before = metric_sum(t.metrics(), ANNOUNCES, protocol="udp")
    with t.udp("127.0.0.7") as s, t.udp("127.0.0.8") as l:
        cid_s = s.connect()
        a = s.announce(cid_s, IH_UDP, peer_id(1), 7001, left=0, num_want=50)
        assert a["interval"] > 0 and (a["seeders"], a["leechers"]) == (1, 0) and a["peers"] == [], a
        cid_l = l.connect()
        b = l.announce(cid_l, IH_UDP, peer_id(2), 7002, left=500, num_want=50)
        assert (b["seeders"], b["leechers"]) == (1, 1), b
        assert b["peers"] == [("127.0.0.7", 7001)], b
        # num_want -1 (default) also returns the seeder.
        assert ("127.0.0.7", 7001) in l.announce(cid_l, IH_UDP, peer_id(2), 7002, left=500, event="none")["peers"]
        st = s.scrape(cid_s, [IH_UDP, IH_EMPTY])
        assert st[0] == {"seeders": 1, "completed": 0, "leechers": 1}, st
        assert st[1] == {"seeders": 0, "completed": 0, "leechers": 0}, st
        # Completed + stopped.
        l.announce(cid_l, IH_UDP, peer_id(2), 7002, left=0, event="completed")
        assert s.scrape(cid_s, [IH_UDP])[0] == {"seeders": 2, "completed": 1, "leechers": 0}
        s.announce(cid_s, IH_UDP, peer_id(1), 7001, left=0, event="stopped")
        assert s.scrape(cid_s, [IH_UDP])[0] == {"seeders": 1, "completed": 1, "leechers": 0}
        # The HTTP scrape sees the same swarm.
        assert t.scrape_counts(IH_UDP) == {"complete": 1, "downloaded": 1, "incomplete": 0}
    assert metric_sum(t.metrics(), ANNOUNCES, protocol="udp") >= before + 5


def test_udp_wrong_connection_id_is_dropped_and_counted(proto_tracker):
    """A request whose connection id does not check out for its source gets no reply at
    all (a spoofed source must never be sent anything: no amplification), and is counted."""
    before = metric_sum(proto_tracker.metrics(), REFUSALS, protocol="udp", reason="bad_connection_id")
    with proto_tracker.udp("127.0.0.9") as u:
        cid = u.connect()
        for bad in (cid ^ 1, 0, UDP_PROTOCOL_ID):
            tid = u.tid()
            u.send(udp_announce_packet(bad, tid, IH_UDP, peer_id(1), 7003, left=1))
            r = u.recv(tid, timeout=0.3)
            assert r is None, f"announce with connection id {bad:#x} was answered: {r}"
            tid = u.tid()
            u.send(struct.pack(">QII", bad, 2, tid) + IH_UDP)
            r = u.recv(tid, timeout=0.3)
            assert r is None, f"scrape with connection id {bad:#x} was answered: {r}"
        # The good id still works; the bad ones left no peer behind.
        assert u.scrape(cid, [IH_UDP])[0]["leechers"] == 0
    after = metric_sum(proto_tracker.metrics(), REFUSALS, protocol="udp", reason="bad_connection_id")
    assert after >= before + 6, (before, after)


@pytest.mark.parametrize("cut", [0, 3, 12, 15, 16, 40, 97])
def test_udp_truncated_packet_does_not_break_the_tracker(proto_tracker, cut):
    with proto_tracker.udp("127.0.0.10") as u:
        cid = u.connect()
        u.send(udp_announce_packet(cid, 0x5EED, IH_UDP, peer_id(5), 7005, left=1)[:cut])
        r = u.recv(timeout=0.3)
        assert r is None or r.action == ACTION_ERROR, f"{cut}-byte announce answered with {r}"
        if cut < 16:
            u.send(struct.pack(">QII", UDP_PROTOCOL_ID, ACTION_CONNECT, 0x5EED)[:cut])
            r = u.recv(timeout=0.3)
            assert r is None or r.action == ACTION_ERROR, f"{cut}-byte connect answered with {r}"
        # Bad BEP 41 options too: an unknown option type and a length past the end.
        for tail in (b"\x07", b"\x02\x50/announce"):
            tid = u.tid()
            u.send(udp_announce_packet(cid, tid, IH_UDP, peer_id(5), 7005, left=1) + tail)
            r = u.recv(tid, timeout=0.3)
            assert r is None or r.action == ACTION_ERROR, f"options {tail!r}: {r}"
        # Still serving.
        assert u.connect() and u.scrape(u.connect(), [IH_UDP])
    proto_tracker.alive()


def test_udp_flood_is_capped_per_swarm(proto_tracker):
    """10,000 distinct peers into one swarm with max_peers_per_swarm = 1000."""
    t = proto_tracker
    before_refusals = metric_sum(t.metrics(), REFUSALS, protocol="udp")
    answered: dict[int, int] = {}  # peer index -> action
    window = 200
    t0 = time.monotonic()
    with t.udp("127.0.0.20") as u:
        cid = u.connect()
        pending = list(range(FLOOD_PEERS))
        for _round in range(4):
            if not pending or time.monotonic() - t0 > 40:
                break
            missing = []
            for start in range(0, len(pending), window):
                if time.monotonic() - t0 > 40:
                    missing += pending[start:]
                    break
                batch = pending[start:start + window]
                for i in batch:
                    # tid = peer index; the port makes each peer a distinct address.
                    u.send(udp_announce_packet(cid, i, IH_FLOOD, peer_id(i, b"-FL0001-"), 10000 + i,
                                               left=i % 2, num_want=0, event="started"))
                want = set(batch)
                deadline = time.monotonic() + 1.0
                while want and time.monotonic() < deadline:
                    r = u.recv(timeout=max(0.01, deadline - time.monotonic()))
                    if r is None:
                        break
                    if r.tid in want:
                        want.discard(r.tid)
                        answered[r.tid] = r.action
                missing += sorted(want)
            pending = missing
        elapsed = time.monotonic() - t0
        accepted = sum(1 for a in answered.values() if a == ACTION_ANNOUNCE)
        errors = sum(1 for a in answered.values() if a == ACTION_ERROR)
        assert len(answered) >= FLOOD_PEERS * 0.99, (
            f"only {len(answered)}/{FLOOD_PEERS} announces answered in {elapsed:.1f}s "
            f"({accepted} ok, {errors} errors)"
        )
        assert accepted >= FLOOD_CAP, f"only {accepted} announces accepted; the cap was never reached"
        st = u.scrape(cid, [IH_FLOOD])[0]
        total = st["seeders"] + st["leechers"]
        assert 0 < total <= FLOOD_CAP, (
            f"swarm holds {total} peers with max_peers_per_swarm = {FLOOD_CAP}: {st} "
            f"({accepted} announces accepted, {errors} refused)"
        )
        # A newcomer is refused or served a bounded answer; other swarms are unaffected.
        r = u.announce_raw(cid, IH_FLOOD, peer_id(99_999), 65000, left=1, num_want=50)
        if r.action == ACTION_ANNOUNCE:
            assert len(parse_udp_announce(r)["peers"]) <= 200, r
        else:
            assert r.action == ACTION_ERROR, str(r)
        other = u.announce(cid, IH_OTHER, peer_id(1), 7100, left=0)
        assert other["seeders"] >= 1, other
    # HTTP still serves; refused announces were counted.
    d = assert_announce_ok(t.announce(IH_FLOOD, peer_id(5, b"-FL0001-"), 10005, left=1, event=None, source="127.0.0.20"))
    assert len(compact_peers(d[b"peers"])) <= 200
    m = t.metrics()
    if errors:
        assert metric_sum(m, REFUSALS, protocol="udp") - before_refusals >= errors, (
            f"{errors} UDP refusals seen, metrics:\n" + "\n".join(ln for ln in m.splitlines() if REFUSALS in ln)
        )
    peers_gauge = metric_samples(m, "swarmdrop_tracker_peers")
    if peers_gauge:
        assert peers_gauge[0][1] <= FLOOD_CAP + 100, peers_gauge


def test_one_address_cannot_fill_a_swarm(trackers):
    """The default per-address cap: one host announcing many ports holds at most 64 slots."""
    t = trackers(config={"open": True, "rate_limit": NO_RATE_LIMIT})
    ih = hashlib.sha1(b"swarmdrop interop: address cap").digest()
    before = metric_sum(t.metrics(), REFUSALS, reason="address_cap")
    accepted, refused = 0, []
    with t.udp("127.0.0.30") as u:
        cid = u.connect()
        for i in range(100):
            r = u.announce_raw(cid, ih, peer_id(i, b"-AC0001-"), 20000 + i, left=1)
            if r.action == ACTION_ANNOUNCE:
                accepted += 1
            else:
                refused.append(r.error)
    assert accepted == 64, f"{accepted} of 100 ports from one address accepted; the default cap is 64"
    assert all(re.search(r"from your address", e) for e in refused), refused[:3]
    # HTTP counts against the same cap; another address is still welcome.
    assert_failure(t.announce(ih, peer_id(500), 21000, source="127.0.0.30"), r"from your address")
    assert_announce_ok(t.announce(ih, peer_id(501), 21001, source="127.0.0.31"))
    assert metric_sum(t.metrics(), REFUSALS, reason="address_cap") - before == 37


def test_rate_limit_is_per_client_address(bulk, trackers):
    t = trackers("--infohash", bulk.infohash, config={
        "known_infohashes": [], "rate_limit": {"per_ip_per_second": 1.0, "per_ip_burst": 3}})
    results = [t.announce(bulk.ih, peer_id(i), 6881, left=1, source="127.0.0.30") for i in range(10)]
    refused = [r.failure() for r in results if r.failure()]
    assert refused, "10 announces in a burst of 3 were all served"
    assert all(re.search(r"too many requests|rate", fr, re.I) for fr in refused), refused
    assert_announce_ok(t.announce(bulk.ih, peer_id(50), 6881, left=1, source="127.0.0.31"))
    m = t.metrics()
    assert any("rate" in lab.get("reason", "") and v >= len(refused) for lab, v in metric_samples(m, REFUSALS)), (
        "\n".join(ln for ln in m.splitlines() if REFUSALS in ln)
    )


# --------------------------------------------------------------------------
# 6. webhook
# --------------------------------------------------------------------------


@pytest.fixture
def webhook():
    r = WebhookReceiver()
    yield r
    r.close()


def webhook_tracker(trackers, webhook: WebhookReceiver, *infohashes: bytes) -> Tracker:
    return trackers(config={
        "known_infohashes": [h.hex() for h in infohashes],
        "rate_limit": NO_RATE_LIMIT,
        "webhook": {"url": webhook.url("/hooks/tracker"), "secret": WEBHOOK_SECRET},
    })


def check_event(webhook: WebhookReceiver, etype: str, ih: bytes, protocol: str, **more) -> dict:
    def match(ev: dict) -> bool:
        return (ev.get("type") == etype and str(ev.get("info_hash", "")).lower() == ih.hex()
                and ev.get("protocol") == protocol and all(ev.get(k) == v for k, v in more.items()))

    d = webhook.wait_for(match, EVENT_TIMEOUT_S)
    assert d is not None, (
        f"no {etype!r} event for {ih.hex()} over {protocol} within {EVENT_TIMEOUT_S}s; deliveries:\n{webhook.summary()}"
    )
    assert d.path == "/hooks/tracker", d.path
    assert d.headers.get("content-type", "").startswith("application/json"), d.headers
    verify_webhook(d, WEBHOOK_SECRET.encode())
    ev = d.json()
    at = parse_rfc3339(ev.get("at"))
    assert abs((at - utcnow()).total_seconds()) < 120, f"event time is not now: {ev}"
    return ev


def test_webhook_announce_event_is_signed(trackers, webhook):
    t = webhook_tracker(trackers, webhook, IH_OTHER)
    assert_announce_ok(t.announce(IH_OTHER, peer_id(1), 6881, left=1, source="127.0.0.40"))
    check_event(webhook, "announce", IH_OTHER, "http")
    # A tampered body / wrong secret does not verify (the check is not vacuous).
    d = webhook.deliveries()[0]
    with pytest.raises(AssertionError):
        verify_webhook(d, b"not-the-secret")


def test_webhook_refused_event(trackers, webhook):
    t = webhook_tracker(trackers, webhook, IH_OTHER)
    assert_failure(t.announce(IH_UNKNOWN, peer_id(1), 6881, left=1, source="127.0.0.41"), r"unknown infohash")
    ev = check_event(webhook, "refused", IH_UNKNOWN, "http")
    assert isinstance(ev.get("reason"), str) and ev["reason"], f"refused event without reason: {ev}"
    with t.udp("127.0.0.41") as u:
        assert u.announce_raw(u.connect(), IH_UNKNOWN, peer_id(1), 6881).action == ACTION_ERROR
    check_event(webhook, "refused", IH_UNKNOWN, "udp")


def test_webhook_completed_stopped_scrape_and_udp(trackers, webhook):
    t = webhook_tracker(trackers, webhook, IH_OTHER, IH_UDP)
    src = "127.0.0.42"
    assert_announce_ok(t.announce(IH_OTHER, peer_id(1), 6881, left=10, source=src))
    assert_announce_ok(t.announce(IH_OTHER, peer_id(1), 6881, left=0, event="completed", source=src))
    check_event(webhook, "completed", IH_OTHER, "http")
    assert t.scrape([IH_OTHER]).status == 200
    check_event(webhook, "scrape", IH_OTHER, "http")
    t.announce(IH_OTHER, peer_id(1), 6881, left=0, event="stopped", source=src)
    check_event(webhook, "stopped", IH_OTHER, "http")
    with t.udp(src) as u:
        cid = u.connect()
        u.announce(cid, IH_UDP, peer_id(2), 6882, left=5)
        check_event(webhook, "announce", IH_UDP, "udp")
        u.scrape(cid, [IH_UDP])
        check_event(webhook, "scrape", IH_UDP, "udp")
    ids = [d.headers.get("webhook-id") for d in webhook.deliveries()]
    assert len(ids) == len(set(ids)), f"webhook-id repeats across events: {ids}"


# --------------------------------------------------------------------------
# --print-config
# --------------------------------------------------------------------------


def test_print_config_documents_the_keys_used_here(swarmdrop):
    proc = swarmdrop.run("tracker", "--print-config")
    try:
        cfg = tomllib.loads(proc.stdout)
    except tomllib.TOMLDecodeError as exc:
        raise AssertionError(f"--print-config is not TOML: {exc}\n{proc.stdout}")
    for key in ("http", "udp", "open", "known_infohashes", "max_peers_per_swarm", "rate_limit", "private", "webhook"):
        assert key in cfg, f"--print-config lacks {key!r}:\n{proc.stdout}"
    assert {"drop", "gateway_keys"} <= cfg["private"].keys(), cfg["private"]
    assert {"url", "secret"} <= cfg["webhook"].keys(), cfg["webhook"]
    assert cfg["open"] is False and cfg["known_infohashes"] == [], "the default tracker must not be open"
    assert "#" in proc.stdout, "the default config is not documented (no comments)"
