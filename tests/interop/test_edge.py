"""`swarmdrop edge` against independent clients and a misbehaving origin.

The edge pulls a published directory through from an origin (``edge_support.Origin``:
a Python HTTP server that counts requests and can corrupt, hold or stop), verifies
every object against the signed targets metadata, and serves it to:

* libtorrent 2.x and aria2c as their only BEP 19 webseed (the torrent is packed with
  ``--webseed http://EDGE/``; no tracker, no peers), public and private (``/t/<token>/``);
* raw sockets for ranges, conditional requests, hostile paths, oversized and slow
  headers (``http.client`` would normalise what the tests must send as is);
* 500 concurrent clients of one uncached object (one origin request);
* gateway tokens: viewer tokens (SIWE) for private drops and service tokens with the
  admin capability for pre-warm, purge and status.

Everything binds 127.0.0.0/8. Waits are on conditions with bounded timeouts; the only
deliberate sleeps wait for a configured lifetime (ttl, a token's expiry) to pass.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import libtorrent as lt
import pytest

from edge_support import (
    CACHE_HEADER,
    CACHE_STATES,
    HITS,
    Edge,
    Origin,
    Published,
    Seconds,
    Size,
    build_request,
    cache_objects,
    edge_defaults,
    event_mentions,
    find_field,
    free_port,
    gateway_config_text,
    lt_add_webseed,
    lt_status_line,
    lt_webseed_session,
    metric_declared,
    metric_lines,
    metric_names,
    raw_request,
    read_events,
    readable_within,
    run_aria2c,
    service_token,
    server_sockets,
    sha256,
    start_edge,
    viewer_token,
    write_edge_config,
)
from gateway_support import flip_token_char, parse_rfc3339, paseto_message, start_gateway, utcnow
from sd_interop import BULK_DROP_PATH
from tracker_support import AlertLog, metric_samples, metric_sum, wait_until

# --------------------------------------------------------------------------
# constants
# --------------------------------------------------------------------------

DROP = "genesis-mint"
CLASSES = ["checkout", "keyframe", "bulk"]
DOMAIN = "edge.example"
URI = "https://edge.example/login"
ADMIN_CAP = "edge-admin"
NO_RATE_LIMIT = {"per_ip_per_second": 1_000_000.0, "per_ip_burst": 1_000_000}

BULK = BULK_DROP_PATH  # 4 MiB, class bulk, has a torrent
SMALL = "frames/f001.png"  # ~30 KiB, class keyframe
TINY = "checkout/index.html"  # 390 bytes, class checkout
# Extra keyframes added to the drop so that a small memory tier must evict.
EXTRA_FRAMES = 8
EXTRA_FRAME_BYTES = 40 * 1024

DOWNLOAD_TIMEOUT_S = 90.0
CONCURRENT_CLIENTS = 500
HEADER_TIMEOUT_S = 2
SLOW_CLIENT_BOUND_S = 30.0  # the slow client must be cut well before this

LT_IP, LT_PRIVATE_IP, LT_REFUSED_IP, ARIA_IP = "127.0.0.2", "127.0.0.3", "127.0.0.5", "127.0.0.4"

# Metric names (`/metrics` of the edge; docs/design/0005-edge.md).
M_REQUESTS = "swarmdrop_edge_requests_total"  # {class, cache}: cache is the x-swarmdrop-cache value
M_HITS = "swarmdrop_edge_hits_total"
M_MISSES = "swarmdrop_edge_misses_total"
M_COALESCED = "swarmdrop_edge_coalesced_total"
M_ORIGIN_BYTES = "swarmdrop_edge_origin_bytes_total"
M_SERVED_BYTES = "swarmdrop_edge_served_bytes_total"
M_EVICTIONS = "swarmdrop_edge_evictions_total"  # {tier}
M_TIER_BYTES = "swarmdrop_edge_tier_bytes"  # {tier}
M_VERIFY_FAILURES = "swarmdrop_edge_verification_failures_total"
M_STALE = "swarmdrop_edge_stale_served_total"
M_LATENCY = "swarmdrop_edge_request_seconds"  # histogram {class}: to the last byte
M_FIRST_BYTE = "swarmdrop_edge_first_byte_seconds"  # histogram {class}: to the response head
M_FILLS_RUNNING = "swarmdrop_edge_fills_running"
TIER_MEMORY, TIER_DISK = "memory", "disk"


# --------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------


def _frame_bytes(i: int, n: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(b"swarmdrop edge interop frame %d/%d" % (i, counter)).digest()
        counter += 1
    return bytes(out[:n])


@pytest.fixture(scope="module")
def edge_drop(pristine_drop, tmp_path_factory) -> Path:
    """The genesis drop plus a few extra keyframes (so a small memory tier must evict)."""
    d = tmp_path_factory.mktemp("edge-drop") / "drop"
    shutil.copytree(pristine_drop, d)
    for i in range(EXTRA_FRAMES):
        (d / "frames" / f"k{i:02d}.bin").write_bytes(_frame_bytes(i, EXTRA_FRAME_BYTES))
    return d


@pytest.fixture(scope="module")
def webseed_port() -> int:
    """The port of the webseed edge, chosen before packing (the torrents name it)."""
    return free_port()


@pytest.fixture(scope="module")
def pub(swarmdrop, keydir, edge_drop, webseed_port, tmp_path_factory) -> Published:
    out = tmp_path_factory.mktemp("edge-published") / "published"
    swarmdrop.pack(edge_drop, keydir, out, "--webseed", f"http://127.0.0.1:{webseed_port}/")
    p = Published.load(out, edge_drop)
    for must in (BULK, SMALL, TINY):
        assert must in p.targets, f"{must} missing from the packed targets: {sorted(p.targets)}"
    assert set(p.classes()) == set(CLASSES), p.classes()
    return p


@pytest.fixture
def origins(pub):
    """Factory: ``origins()`` serves the module's published tree; all stop at teardown."""
    made: list[Origin] = []

    def _new(root: Path | None = None) -> Origin:
        o = Origin(root or pub.root)
        made.append(o)
        return o

    yield _new
    for o in made:
        o.stop()


@pytest.fixture
def edges(swarmdrop_bin, pub, tmp_path):
    """Factory: ``edges(origin, config={...}, cache_dir=...)`` starts an edge (``--root``
    is the published 1.root.json); all stop at teardown."""
    made: list[Edge] = []

    def _new(origin: Origin, config: dict | None = None, cache_dir: Path | None = None,
             listen: str = "127.0.0.1:0", root: bool = True) -> Edge:
        n = len(made)
        cfg = write_edge_config(swarmdrop_bin, tmp_path / f"edge-{n}.toml", config) if config is not None else None
        e = start_edge(
            swarmdrop_bin, origin=origin.url, cache_dir=cache_dir or (tmp_path / f"cache-{n}"),
            listen=listen, root=pub.root_json if root else None, config=cfg, log_path=tmp_path / f"edge-{n}.stderr",
        )
        made.append(e)
        return e

    yield _new
    for e in made:
        e.close()


@pytest.fixture(scope="module")
def shared(swarmdrop_bin, pub, tmp_path_factory):
    """One origin + edge for the read-only tests (ranges, conditionals, paths)."""
    d = tmp_path_factory.mktemp("shared-edge")
    origin = Origin(pub.root)
    edge = start_edge(swarmdrop_bin, origin=origin.url, cache_dir=d / "cache", root=pub.root_json,
                      log_path=d / "edge.stderr")
    yield origin, edge
    edge.close()
    origin.stop()


@pytest.fixture(scope="module")
def webseed_edge(swarmdrop_bin, pub, webseed_port, tmp_path_factory):
    """The edge the torrents name (``--listen 127.0.0.1:<webseed_port>``) and its origin."""
    d = tmp_path_factory.mktemp("webseed-edge")
    origin = Origin(pub.root)
    edge = start_edge(swarmdrop_bin, origin=origin.url, cache_dir=d / "cache", listen=f"127.0.0.1:{webseed_port}",
                      root=pub.root_json, log_path=d / "edge.stderr")
    yield origin, edge
    edge.close()
    origin.stop()


def _gateway(swarmdrop_bin, keydir: Path, d: Path, *, classes=CLASSES, drop=DROP, lifetime="30m"):
    fields = {
        "domain": DOMAIN, "uri": URI, "chain_id": 1, "drop": drop,
        "signing_key": keydir / "timestamp.key", "token_lifetime": lifetime,
        "classes": classes, "rate_limit": NO_RATE_LIMIT,
    }
    services = [
        {"name": "edge-ops", "public_key": keydir / "snapshot.pub", "caps": [ADMIN_CAP]},
        {"name": "edge-plain", "public_key": keydir / "targets.pub", "caps": ["edge"]},
    ]
    path = d / "gateway.toml"
    path.write_text(gateway_config_text(fields, services))
    return start_gateway(swarmdrop_bin, path, domain=DOMAIN, uri=URI, chain_id=1, stdout_path=d / "stdout.log")


@pytest.fixture(scope="module")
def gateway(swarmdrop_bin, keydir, tmp_path_factory):
    gw = _gateway(swarmdrop_bin, keydir, tmp_path_factory.mktemp("edge-gateway"))
    yield gw
    gw.close()


@pytest.fixture(scope="module")
def narrow_gateway(swarmdrop_bin, keydir, tmp_path_factory):
    """Same key and drop, but its tokens do not grant class ``bulk``."""
    gw = _gateway(swarmdrop_bin, keydir, tmp_path_factory.mktemp("narrow-gateway"), classes=["checkout", "keyframe"])
    yield gw
    gw.close()


@pytest.fixture(scope="module")
def other_drop_gateway(swarmdrop_bin, keydir, tmp_path_factory):
    gw = _gateway(swarmdrop_bin, keydir, tmp_path_factory.mktemp("other-drop-gateway"), drop="another-drop")
    yield gw
    gw.close()


@pytest.fixture(scope="module")
def short_gateway(swarmdrop_bin, keydir, tmp_path_factory):
    """Tokens that live one second."""
    gw = _gateway(swarmdrop_bin, keydir, tmp_path_factory.mktemp("short-gateway"), lifetime="1s")
    yield gw
    gw.close()


@pytest.fixture(scope="module")
def admin_token(gateway, keydir) -> str:
    return service_token(gateway, keydir / "snapshot.key", DROP, "edge-ops")


@pytest.fixture(scope="module")
def capless_service_token(gateway, keydir) -> str:
    """A service token without the ``edge-admin`` capability."""
    return service_token(gateway, keydir / "targets.key", DROP, "edge-plain")


def admin_config(keydir: Path, **more) -> dict:
    return {"gateway_keys": [keydir / "timestamp.pub"], **more}


def private_config(keydir: Path, **more) -> dict:
    # leeway 0: a one-second token is expired a second after its exp.
    return {"gateway_keys": [keydir / "timestamp.pub"], "private.drop": DROP, "private.leeway": Seconds(0), **more}


# --------------------------------------------------------------------------
# assertion helpers
# --------------------------------------------------------------------------


def assert_served(edge: Edge, pub: Published, drop_path: str, r, origin: Origin | None = None,
                  cache: set[str] | None = None) -> None:
    """200 with exactly the signed bytes (and ETag), optionally from one of ``cache``."""
    want = pub.sha(drop_path)
    assert r.status == 200 and r.complete, f"GET {drop_path}: want 200 with the whole body\n{edge.why(r, origin)}"
    assert len(r.body) == pub.length(drop_path) and r.sha256() == want, (
        f"GET {drop_path}: body is {len(r.body)} bytes with sha256 {r.sha256()}, the targets metadata says "
        f"{pub.length(drop_path)} bytes, {want}\n{edge.why(r, origin)}"
    )
    assert r.header("etag") == f'"{want}"', f"GET {drop_path}: ETag {r.header('etag')!r}, want '\"{want}\"'\n{r}"
    if cache is not None:
        assert r.cache in cache, (
            f"GET {drop_path}: {CACHE_HEADER} is {r.cache!r}, want one of {sorted(cache)}\n{edge.why(r, origin)}"
        )


def assert_refused(edge: Edge, r, status: int | tuple[int, ...], code: str | None, what: str) -> None:
    statuses = (status,) if isinstance(status, int) else status
    assert r.status in statuses, f"{what}: want HTTP {' or '.join(map(str, statuses))} {code or ''}\n{edge.why(r)}"
    body = r.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and isinstance(body.get("detail"), str), (
        f"{what}: error body is not {{\"error\": code, \"detail\": text}}\n{r}"
    )
    if code is not None:
        assert body["error"] == code, f"{what}: error code {body['error']!r}, want {code!r}\n{r}"


def need_metric(text: str, name: str) -> None:
    if not metric_declared(text, name):
        edge_names = [n for n in metric_names(text) if "edge" in n] or metric_names(text)
        pytest.fail(f"/metrics has no {name}; it has: {edge_names}", pytrace=False)


def lt_download(ses, h, log: AlertLog, timeout: float = DOWNLOAD_TIMEOUT_S) -> bool:
    """Wait for the download; give up early when the webseed (the only source) reported an
    error and nothing at all was downloaded in the 5 s after it."""
    first_error: list[float] = []

    def done_or_hopeless() -> bool:
        st = h.status()
        if st.is_seeding:
            return True
        if not first_error and any(log.of(n, lt.url_seed_alert) for n in log.sessions):
            first_error.append(time.monotonic())
        return bool(first_error) and st.total_wanted_done == 0 and time.monotonic() - first_error[0] > 5.0

    wait_until(done_or_hopeless, timeout, on_poll=log.pump)
    return h.status().is_seeding


# --------------------------------------------------------------------------
# 1. libtorrent and aria2c with the edge as their only webseed
# --------------------------------------------------------------------------


def test_libtorrent_downloads_bulk_with_the_edge_as_only_source(webseed_edge, pub, tmp_path):
    origin, edge = webseed_edge
    torrent = pub.torrent(BULK)
    seeds = list(lt.load_torrent_file(str(torrent)).url_seeds)
    assert seeds == [edge.base + pub.rel(BULK)], f"torrent url-list {seeds} does not name the edge {edge.base}"
    assert not lt.load_torrent_file(str(torrent)).trackers, "the torrent must name no tracker"

    save = tmp_path / "lt"
    save.mkdir()
    ses = lt_webseed_session(LT_IP)
    log = AlertLog({"lt": ses})
    try:
        h = lt_add_webseed(ses, torrent, save)
        done = lt_download(ses, h, log)
        assert done, (
            f"libtorrent did not finish from the edge within {DOWNLOAD_TIMEOUT_S}s: {lt_status_line(h)}\n"
            f"alerts:\n{log.summary()}\n{edge.why(origin=origin)}"
        )
        assert not log.of("lt", lt.hash_failed_alert), f"hash failures from the edge:\n{log.summary()}"
        name = lt.torrent_info(str(torrent)).name()
    finally:
        ses.pause()
    got = sha256((save / name).read_bytes())
    assert got == pub.sha(BULK), f"libtorrent's copy has sha256 {got}, targets metadata says {pub.sha(BULK)}"
    # However libtorrent split its range requests, the edge filled the object once.
    assert origin.gets(pub.url_path(BULK)) == 1, (
        f"origin GETs for the bulk object: {origin.gets(pub.url_path(BULK))}, want 1\n{origin.summary()}"
    )


def test_aria2c_downloads_bulk_with_the_edge_as_only_source(webseed_edge, pub, tmp_path):
    origin, edge = webseed_edge
    out = tmp_path / "aria2"
    proc, argv = run_aria2c(pub.torrent(BULK), out, ARIA_IP)
    diag = (f"command: {' '.join(argv)}\nexit {proc.returncode}\n--- stdout ---\n{proc.stdout[-3000:]}\n"
            f"--- stderr ---\n{proc.stderr[-2000:]}\n{edge.why(origin=origin)}")
    assert proc.returncode == 0, "aria2c failed to download from the edge\n" + diag
    name = lt.torrent_info(str(pub.torrent(BULK))).name()
    got = out / name
    assert got.is_file(), f"aria2c wrote no {name}\n" + diag
    assert sha256(got.read_bytes()) == pub.sha(BULK), "aria2c's copy differs from the signed sha256\n" + diag
    assert origin.gets(pub.url_path(BULK)) == 1, f"origin GETs: {origin.summary()}"


# --------------------------------------------------------------------------
# 2. a flash crowd on one uncached object
# --------------------------------------------------------------------------


def test_500_concurrent_misses_make_one_origin_request(origins, edges, pub):
    origin = origins()
    edge = edges(origin)
    path = pub.url_path(SMALL)
    want = pub.sha(SMALL)
    before = edge.metrics()

    # The origin holds the object's response until every client has sent its request, so
    # the 500 requests really overlap one fill (the outcome asserted holds either way).
    origin.hold(path)
    lock = threading.Lock()
    sent = [0]
    all_sent = threading.Event()

    def on_sent() -> None:
        with lock:
            sent[0] += 1
            if sent[0] == CONCURRENT_CLIENTS:
                all_sent.set()

    req = build_request("GET", path, host=f"127.0.0.1:{edge.port}")
    with ThreadPoolExecutor(CONCURRENT_CLIENTS) as pool:
        futures = [pool.submit(raw_request, edge.port, req, timeout=120, on_sent=on_sent)
                   for _ in range(CONCURRENT_CLIENTS)]
        try:
            assert all_sent.wait(60), f"only {sent[0]} of {CONCURRENT_CLIENTS} clients could send their request"
            assert origin.wait_for_gets(path, 1, 30), (
                f"the edge never asked the origin for {path}\n{edge.why(origin=origin)}"
            )
            # Let the edge read every request before the fill completes: all 500 connections
            # accepted with nothing left unread (bounded; what is asserted holds either way).
            def all_read() -> bool:
                established, unread = server_sockets(edge.port)
                return established >= CONCURRENT_CLIENTS and unread == 0

            wait_until(all_read, 10.0, poll=0.05)
        finally:
            origin.release(path)
        results = [f.result() for f in futures]

    bad = [r for r in results if r.status != 200 or r.sha256() != want]
    assert not bad, (
        f"{len(bad)} of {CONCURRENT_CLIENTS} responses were not 200 with the signed bytes; first:\n"
        + "\n".join(str(r) for r in bad[:3]) + "\n" + edge.why(origin=origin)
    )
    assert origin.gets(path) == 1, (
        f"{CONCURRENT_CLIENTS} concurrent GETs made {origin.gets(path)} origin GETs for {path}, want 1\n{origin.summary()}"
    )
    states: dict[str | None, int] = {}
    for r in results:
        states[r.cache] = states.get(r.cache, 0) + 1
    assert states.get("miss") == 1, f"want exactly one '{CACHE_HEADER}: miss', got {states}"
    assert set(states) <= ({"miss", "coalesced"} | HITS) & CACHE_STATES, f"unexpected {CACHE_HEADER} values: {states}"
    after = edge.metrics()
    need_metric(after, M_COALESCED)
    coalesced = metric_sum(after, M_COALESCED) - metric_sum(before, M_COALESCED)
    assert coalesced == states.get("coalesced", 0), (
        f"{M_COALESCED} moved by {coalesced}, but {states.get('coalesced', 0)} responses said coalesced\n"
        + metric_lines(after, M_COALESCED)
    )


def test_a_client_that_disconnects_does_not_cancel_the_fill(origins, edges, pub):
    origin = origins()
    edge = edges(origin)
    path = pub.url_path(SMALL)
    origin.hold(path)
    try:
        with socket.create_connection((edge.host, edge.port), timeout=10) as sock:
            sock.sendall(build_request("GET", path, host=f"127.0.0.1:{edge.port}"))
            assert origin.wait_for_gets(path, 1, 30), f"the edge never asked the origin\n{edge.why(origin=origin)}"
        # The client is gone before the origin answers.
    finally:
        origin.release(path)
    filled = wait_until(
        lambda: pub.sha(SMALL) in cache_objects(edge.cache_dir) and metric_sum(edge.metrics(), M_FILLS_RUNNING) == 0,
        15.0, poll=0.1,
    )
    assert filled, (
        f"the fill did not complete after its only client disconnected (objects/: {sorted(cache_objects(edge.cache_dir))})\n"
        + metric_lines(edge.metrics(), M_FILLS_RUNNING) + "\n" + edge.why(origin=origin)
    )
    assert_served(edge, pub, SMALL, edge.get(path), origin, cache=HITS)
    assert origin.gets(path) == 1, origin.summary()


def test_an_origin_slower_than_origin_timeout_is_502_origin_failed(origins, edges, pub):
    origin = origins()
    edge = edges(origin, {"limits.origin_timeout": Seconds(1)})
    path = pub.url_path(SMALL)
    origin.set_delay(5, path)
    r = edge.get(path, timeout=30)
    assert_refused(edge, r, 502, "origin_failed", f"GET {path} with the origin 5 s late (origin_timeout 1 s)")
    origin.set_delay(0, path)
    assert_served(edge, pub, SMALL, edge.get(path), origin, cache={"miss"})


def test_requests_during_the_first_index_load_wait_for_it(origins, edges, pub):
    origin = origins()
    origin.set_delay(0.5)  # the first walk (timestamp, snapshot, targets, next root) takes >= 2 s
    edge = edges(origin)
    r = edge.get(pub.url_path(TINY), timeout=60)
    assert_served(edge, pub, TINY, r, origin)


def test_without_root_the_origin_root_is_trusted_on_first_use_and_said(origins, edges, pub):
    origin = origins()
    edge = edges(origin, root=False)
    assert_served(edge, pub, TINY, edge.get(pub.url_path(TINY)), origin)
    said = wait_until(lambda: any("first use" in ln.lower() for ln in edge.stderr_lines), 5.0)
    assert said, f"no stderr line says the origin's root is trusted on first use:\n{edge.stderr()}"


# --------------------------------------------------------------------------
# 3. a corrupting origin
# --------------------------------------------------------------------------


def test_corrupted_small_object_is_refused_and_never_cached(origins, edges, pub, tmp_path):
    events = tmp_path / "events.jsonl"
    origin = origins()
    edge = edges(origin, {"events_log": events})
    path = pub.url_path(SMALL)
    assert pub.length(SMALL) < 4 << 20, "SMALL must be under verify_before_send"
    before = edge.metrics()
    origin.corrupt(path)

    r1 = edge.get(path)
    assert_refused(edge, r1, 502, "verification_failed", f"GET {path} with a corrupting origin")
    assert origin.gets(path) == 1, f"origin GETs {origin.gets(path)} after one request\n{origin.summary()}"
    r2 = edge.get(path)
    assert_refused(edge, r2, 502, "verification_failed", f"second GET {path} with a corrupting origin")
    assert origin.gets(path) == 2, (
        f"a second GET must refetch (nothing verified was cached): origin GETs {origin.gets(path)}\n{origin.summary()}"
    )
    assert pub.sha(SMALL) not in cache_objects(edge.cache_dir), "a corrupted fill reached objects/"
    for p in cache_objects(edge.cache_dir).values():
        assert sha256(p.read_bytes()) == p.name, f"{p} does not hash to its name"

    m = edge.metrics()
    need_metric(m, M_VERIFY_FAILURES)
    grew = metric_sum(m, M_VERIFY_FAILURES) - metric_sum(before, M_VERIFY_FAILURES)
    assert grew >= 2, f"{M_VERIFY_FAILURES} grew by {grew} after two failed fills\n{metric_lines(m, M_VERIFY_FAILURES)}"
    found = wait_until(lambda: [e for e in read_events(events) if event_mentions(e, "verification")], 10.0)
    assert found, f"no verification failure event in {events}:\n" + "\n".join(map(str, read_events(events)[-10:]))

    # The origin heals: the next request fills and serves the signed bytes.
    origin.uncorrupt(path)
    r3 = edge.get(path)
    assert_served(edge, pub, SMALL, r3, origin, cache={"miss"})
    assert origin.gets(path) == 3


def test_corrupted_large_object_is_cut_short(origins, edges, pub):
    """Past verify_before_send the body streams; a mismatch must cut it, never complete it."""
    origin = origins()
    edge = edges(origin, {"verify_before_send": Size(64 * 1024)})
    path = pub.url_path(BULK)
    origin.corrupt(path, offset=pub.length(BULK) // 2)

    r = edge.get(path, timeout=60)
    assert r.status is not None, f"no response at all\n{edge.why(r, origin)}"
    assert not (r.status == 200 and r.complete), (
        f"the edge sent a complete 200 of an object that fails verification\n{edge.why(r, origin)}"
    )
    assert r.status in (200, 502), f"want a cut 200 or a 502, got {r.status}\n{edge.why(r, origin)}"
    if r.status == 200:
        assert r.header("content-length") == str(pub.length(BULK)) or "chunked" in (r.header("transfer-encoding") or ""), r
        assert len(r.body) < pub.length(BULK), r
    else:
        assert r.error_code() == "verification_failed", edge.why(r, origin)
    assert pub.sha(BULK) not in cache_objects(edge.cache_dir), "a corrupted fill reached objects/"
    # Sent after the first client saw its response cut: it must start a fill of its own,
    # not join the one that already failed.
    r2 = edge.get(path, timeout=60)
    assert not (r2.status == 200 and r2.complete), f"second request completed a bad object\n{edge.why(r2, origin)}"
    assert origin.gets(path) >= 2, (
        f"a request sent after the first response was cut made no origin request (x-swarmdrop-cache: "
        f"{r2.cache}): it joined the failed fill\n{edge.why(r2, origin)}"
    )
    m = edge.metrics()
    assert metric_sum(m, M_VERIFY_FAILURES) >= 2, metric_lines(m, M_VERIFY_FAILURES)


def test_ranges_of_a_corrupted_fill_never_complete(origins, edges, pub):
    """A range that ends before the corrupted byte must still wait for the whole digest:
    webseeds and players ask for ranges, and a complete 206 would vouch for bad bytes."""
    origin = origins()
    edge = edges(origin, {"verify_before_send": Size(64 * 1024)})
    path = pub.url_path(BULK)
    origin.corrupt(path, offset=pub.length(BULK) - 10)
    r = edge.get(path, headers={"Range": "bytes=0-1023"}, timeout=60)
    assert not (r.status == 206 and r.complete), (
        f"a complete 206 for a range of an object that fails verification\n{edge.why(r, origin)}"
    )
    assert r.status in (206, 502), f"want a cut 206 or a 502, got {r.status}\n{edge.why(r, origin)}"
    assert pub.sha(BULK) not in cache_objects(edge.cache_dir), "a corrupted fill reached objects/"


# --------------------------------------------------------------------------
# 4. pre-warm, admin auth, purge
# --------------------------------------------------------------------------


def prewarm(edge: Edge, token: str, body: dict) -> dict:
    r = edge.post_json("/admin/prewarm", body, token, timeout=120)
    assert r.status == 200, f"POST /admin/prewarm {body}\n{edge.why(r)}"
    res = r.json()
    for k in ("filled", "bytes", "failed"):
        assert k in res, f"prewarm answer lacks {k!r}: {res}"
    return res


def test_prewarm_then_origin_down_serves_every_target(origins, edges, pub, keydir, admin_token):
    origin = origins()
    # timestamp_ttl 1 s: the edge's index goes stale (and its refresh fails) while we read.
    edge = edges(origin, admin_config(keydir, timestamp_ttl=Seconds(1)))
    res = prewarm(edge, admin_token, {"classes": CLASSES})
    assert res["failed"] == [], f"prewarm failures: {res}"
    assert res["filled"] >= len(pub.targets), f"prewarm filled {res['filled']} of {len(pub.targets)} targets: {res}"
    total = sum(pub.length(p) for p in pub.targets)
    assert res["bytes"] >= total, f"prewarm reports {res['bytes']} bytes, the targets hold {total}: {res}"
    for p in pub.targets:
        assert origin.gets(pub.url_path(p)) == 1, f"prewarm fetched {p} {origin.gets(pub.url_path(p))} times"
    timestamp = edge.get("/metadata/timestamp.json")
    assert timestamp.status == 200, edge.why(timestamp)

    origin.stop()
    for round_ in ("right after the origin stopped", "after timestamp_ttl passed"):
        for p in sorted(pub.targets):
            r = edge.get(pub.url_path(p))
            assert_served(edge, pub, p, r, cache=HITS)
        t = edge.get("/metadata/timestamp.json")
        assert t.status == 200 and t.body == timestamp.body, f"timestamp.json {round_}\n{edge.why(t)}"
        if round_.startswith("right"):
            time.sleep(1.5)  # deliberate: let timestamp_ttl (1 s) pass with the origin down
    status = edge.request("GET", "/admin/status", {"Authorization": f"Bearer {admin_token}"})
    assert status.status == 200 and isinstance(status.json(), dict), edge.why(status)


@pytest.mark.parametrize("endpoint", [("POST", "/admin/prewarm"), ("POST", "/admin/purge"), ("GET", "/admin/status")],
                         ids=["prewarm", "purge", "status"])
def test_admin_calls_need_a_service_token_with_the_cap(origins, edges, pub, keydir, gateway, admin_token,
                                                       capless_service_token, endpoint):
    origin = origins()
    edge = edges(origin, admin_config(keydir))
    method, path = endpoint
    body = {"prewarm": {"classes": CLASSES}, "purge": {"all": True}}.get(path.rsplit("/", 1)[1])
    payload = None if body is None else json.dumps(body).encode()
    cases = [
        ("no Authorization", None, 401, "token_missing"),
        ("a viewer (wallet) token", viewer_token(gateway), (401, 403), None),
        ("a service token without edge-admin", capless_service_token, (401, 403), None),
        ("a forged admin token", flip_token_char(admin_token), 401, "bad_signature"),
        ("garbage", "not-a-token", 401, None),
    ]
    for what, token, status, code in cases:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        r = edge.request(method, path, headers, payload)
        assert_refused(edge, r, status, code, f"{method} {path} with {what}")
    fetched = [p for p in origin.get_counts() if p.startswith("/targets/")]
    assert not fetched, f"refused admin calls made the edge fetch {fetched}"
    ok = edge.request(method, path, {"Content-Type": "application/json", "Authorization": f"Bearer {admin_token}"},
                      payload, timeout=120)
    assert ok.status == 200, f"{method} {path} with the admin token\n{edge.why(ok)}"


def test_purge_forgets_targets(origins, edges, pub, keydir, admin_token):
    origin = origins()
    edge = edges(origin, admin_config(keydir))
    # A name the signed targets do not list: refused as a whole (404) or listed in "failed".
    r = edge.post_json("/admin/prewarm", {"targets": ["frames/nope.png"]}, admin_token)
    if r.status == 200:
        failed = [f.get("target") for f in r.json()["failed"]]
        assert failed == ["frames/nope.png"], f"prewarm of an unknown target\n{edge.why(r)}"
    else:
        assert_refused(edge, r, 404, "not_found", "prewarm of an unknown target")
    res = prewarm(edge, admin_token, {"targets": [SMALL, TINY]})
    assert res["filled"] == 2 and res["failed"] == [], res
    assert res["bytes"] == pub.length(SMALL) + pub.length(TINY), res
    assert_served(edge, pub, SMALL, edge.get(pub.url_path(SMALL)), origin, cache=HITS)

    r = edge.post_json("/admin/purge", {"targets": [SMALL]}, admin_token)
    assert r.status == 200 and r.json().get("purged", 0) >= 1, edge.why(r)
    again = edge.get(pub.url_path(SMALL))
    assert_served(edge, pub, SMALL, again, origin, cache={"miss"})
    assert origin.gets(pub.url_path(SMALL)) == 2, origin.summary()
    assert_served(edge, pub, TINY, edge.get(pub.url_path(TINY)), origin, cache=HITS)

    r = edge.post_json("/admin/purge", {"classes": ["checkout"]}, admin_token)
    assert r.status == 200 and r.json().get("purged", 0) >= 1, edge.why(r)
    assert_served(edge, pub, TINY, edge.get(pub.url_path(TINY)), origin, cache={"miss"})

    r = edge.post_json("/admin/purge", {"all": True}, admin_token)
    assert r.status == 200 and r.json().get("purged", 0) >= 2, edge.why(r)
    assert pub.sha(SMALL) not in cache_objects(edge.cache_dir), "purged object still in objects/"
    assert_served(edge, pub, SMALL, edge.get(pub.url_path(SMALL)), origin, cache={"miss"})


# --------------------------------------------------------------------------
# 5. restart on the same cache dir, origin down
# --------------------------------------------------------------------------


def test_restart_serves_the_disk_tier_without_origin(origins, edges, pub, keydir, admin_token, tmp_path):
    cache = tmp_path / "kept-cache"
    origin = origins()
    first = edges(origin, admin_config(keydir), cache_dir=cache)
    res = prewarm(first, admin_token, {"classes": CLASSES})
    assert res["failed"] == [], res
    shas = {pub.sha(p): p for p in pub.targets}
    on_disk = wait_until(lambda: set(shas) <= set(cache_objects(cache)), 10.0)
    assert on_disk, (
        f"after prewarm, objects/ lacks {sorted(shas[s] for s in set(shas) - set(cache_objects(cache)))}\n"
        f"objects/: {sorted(cache_objects(cache))}"
    )
    first.close()
    origin.stop()

    second = edges(origin, admin_config(keydir), cache_dir=cache)
    for sha, path in cache_objects(cache).items():
        assert sha256(path.read_bytes()) == sha, f"{path} does not hash to its name after a restart"
    for p in sorted(pub.targets):
        r = second.get(pub.url_path(p))
        assert_served(second, pub, p, r, cache={"hit-disk"})
    m = second.metrics()
    need_metric(m, M_REQUESTS)
    disk_hits = metric_sum(m, M_REQUESTS, cache="hit-disk")
    assert disk_hits == len(pub.targets), (
        f"{M_REQUESTS}{{cache=hit-disk}} is {disk_hits}, want {len(pub.targets)}\n{metric_lines(m, M_REQUESTS)}"
    )
    assert metric_sum(m, M_MISSES) == 0, metric_lines(m, M_MISSES)


def test_stale_entry_is_served_while_the_origin_fails_then_dropped(origins, edges, pub):
    origin = origins()
    edge = edges(origin, {"ttl": Seconds(1), "stale_if_error": Seconds(4)})
    path = pub.url_path(TINY)
    assert_served(edge, pub, TINY, edge.get(path), origin, cache={"miss"})
    t0 = time.monotonic()
    origin.stop()
    time.sleep(max(0.0, t0 + 1.5 - time.monotonic()))  # deliberate: past ttl, inside stale_if_error
    r = edge.get(path)
    assert_served(edge, pub, TINY, r, cache={"stale"})
    m = edge.metrics()
    assert metric_sum(m, M_STALE) == 1, metric_lines(m, M_STALE)
    assert metric_sum(m, M_REQUESTS, cache="stale") == 1, metric_lines(m, M_REQUESTS)
    time.sleep(max(0.0, t0 + 7.0 - time.monotonic()))  # deliberate: past ttl + stale_if_error
    r = edge.get(path)
    assert_refused(edge, r, 502, "origin_failed", "GET after stale_if_error with the origin down")


# --------------------------------------------------------------------------
# 6. ranges and conditional requests
# --------------------------------------------------------------------------


RANGE_TARGETS = [SMALL, BULK]


@pytest.mark.parametrize("target", RANGE_TARGETS)
def test_single_ranges(shared, pub, target):
    origin, edge = shared
    path, data = pub.url_path(target), pub.data(target)
    n = len(data)
    cases = [
        ("bytes=0-99", 0, 99),
        ("bytes=-10", n - 10, n - 1),
        ("bytes=10-", 10, n - 1),
        ("bytes=0-0", 0, 0),
        (f"bytes={n - 1}-", n - 1, n - 1),
        (f"bytes={n - 5}-{n + 1000}", n - 5, n - 1),  # last-pos past the end is clamped
        (f"bytes=-{n + 1000}", 0, n - 1),  # suffix longer than the object: all of it
    ]
    for spec, first, last in cases:
        r = edge.get(path, {"Range": spec})
        want_cr = f"bytes {first}-{last}/{n}"
        assert r.status == 206, f"Range: {spec} on {target}: want 206 {want_cr}\n{edge.why(r)}"
        assert r.header("content-range") == want_cr, f"Range: {spec}: Content-Range {r.header('content-range')!r}, want {want_cr!r}\n{r}"
        assert r.header("content-length") == str(last - first + 1), f"Range: {spec}: Content-Length\n{r}"
        assert r.body == data[first:last + 1], f"Range: {spec}: wrong bytes ({len(r.body)} bytes)\n{r}"
        assert r.header("etag") == f'"{pub.sha(target)}"', f"Range: {spec}: ETag\n{r}"


@pytest.mark.parametrize("target", RANGE_TARGETS)
def test_unsatisfiable_ranges_get_416(shared, pub, target):
    origin, edge = shared
    path, n = pub.url_path(target), pub.length(target)
    for spec in (f"bytes={n}-", f"bytes={n + 5}-{n + 10}", f"bytes={n}-{n}"):
        r = edge.get(path, {"Range": spec})
        assert r.status == 416, f"Range: {spec} on a {n}-byte object: want 416\n{edge.why(r)}"
        assert r.header("content-range") == f"bytes */{n}", f"Range: {spec}: want Content-Range 'bytes */{n}'\n{r}"
        assert r.error_code() in (None, "range_not_satisfiable"), f"Range: {spec}: error code\n{r}"


def _check_lenient(edge: Edge, pub: Published, target: str, spec: str, r, allow_206: bool) -> None:
    data = pub.data(target)
    n = len(data)
    where = f"Range: {spec[:80]}{'…' if len(spec) > 80 else ''} on {target}"
    assert r.status is not None and r.status < 500, f"{where}: want 200 or 416, got a server error\n{edge.why(r)}"
    allowed = (200, 206, 416) if allow_206 else (200, 416)
    assert r.status in allowed, f"{where}: want one of {allowed}\n{edge.why(r)}"
    if r.status == 200:
        assert r.complete and r.body == data, f"{where}: a 200 must carry the whole object\n{r}"
    elif r.status == 416:
        assert r.header("content-range") == f"bytes */{n}", f"{where}: 416 without 'bytes */{n}'\n{r}"
    else:
        cr = r.header("content-range") or ""
        m = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", cr)
        assert m and int(m.group(3)) == n, f"{where}: 206 with Content-Range {cr!r}\n{r}"
        a, b = int(m.group(1)), int(m.group(2))
        assert r.body == data[a:b + 1], f"{where}: 206 {cr} with the wrong bytes\n{r}"


@pytest.mark.parametrize("target", RANGE_TARGETS)
def test_odd_ranges_get_200_or_416_never_5xx(shared, pub, target):
    origin, edge = shared
    path = pub.url_path(target)
    huge = "9" * 23
    lenient_206 = [f"bytes=0-{huge}", f"bytes=-{huge}", "bytes= 0-1"]
    whole_or_416 = [
        "bytes=5-1", f"bytes={huge}-", f"bytes={huge}-{huge}", "bytes=abc", "bytes=", "bytes=-", "bytes=--1",
        "bytes=1-2-3", "bytes=-0", "items=0-1", "bytes=0x10-0x20", "bytes=\u00e9-1".encode().decode("latin-1"),
        "bytes=0-1,5-6", "bytes=0-1, 3-4", "bytes=" + ",".join(f"{i}-{i}" for i in range(1000)),
        "bytes=" + ",".join("0-" for _ in range(1000)),
    ]
    for spec in lenient_206 + whole_or_416:
        r = edge.get(path, {"Range": spec})
        _check_lenient(edge, pub, target, spec, r, allow_206=spec in lenient_206)
    assert edge.get("/healthz").status == 200


def test_conditional_requests_and_head(shared, pub):
    origin, edge = shared
    path, data, sha = pub.url_path(SMALL), pub.data(SMALL), pub.sha(SMALL)
    etag = f'"{sha}"'
    full = edge.get(path)
    assert_served(edge, pub, SMALL, full)
    cc = full.header("cache-control") or ""
    assert "max-age=31536000" in cc and "immutable" in cc, f"targets want Cache-Control max-age=31536000, immutable\n{full}"

    r = edge.get(path, {"If-None-Match": etag}, drain=True)
    assert r.status == 304, f"If-None-Match with the ETag: want 304\n{edge.why(r)}"
    assert r.body == b"" and r.extra == b"", f"304 carried a body\n{r}"
    r = edge.get(path, {"If-None-Match": f'"{"0" * 64}", {etag}'})
    assert r.status == 304, f"If-None-Match listing the ETag: want 304\n{r}"
    r = edge.get(path, {"If-None-Match": f'"{"0" * 64}"'})
    assert r.status == 200 and r.body == data, f"If-None-Match with another ETag: want 200 with the body\n{r}"
    r = edge.get(path, {"If-Range": etag, "Range": "bytes=0-9"})
    assert r.status == 206 and r.body == data[:10], f"If-Range with the ETag: want 206\n{r}"
    r = edge.get(path, {"If-Range": f'"{"0" * 64}"', "Range": "bytes=0-9"})
    assert r.status == 200 and r.body == data, f"If-Range with another ETag: want the full 200\n{r}"

    h = edge.head(path, drain=True)
    assert h.status == 200, f"HEAD {path}\n{edge.why(h)}"
    assert h.header("content-length") == str(len(data)), f"HEAD: Content-Length {h.header('content-length')!r}, want {len(data)}\n{h}"
    assert h.header("etag") == etag, f"HEAD: ETag\n{h}"
    assert h.extra == b"", f"HEAD sent {len(h.extra)} body bytes\n{h}"


def test_metadata_torrents_and_healthz_pass_through(shared, pub):
    origin, edge = shared
    hz = edge.get("/healthz")
    assert hz.status == 200 and hz.body.strip() == b"ok", edge.why(hz)
    meta = pub.root / "metadata"
    for name in ("timestamp.json", "root.json", "1.root.json", "1.snapshot.json", "1.targets.json"):
        r = edge.get(f"/metadata/{name}")
        assert r.status == 200, f"GET /metadata/{name}\n{edge.why(r, origin)}"
        assert r.body == (meta / name).read_bytes(), f"/metadata/{name} differs from the origin's file\n{r}"
        cc = r.header("cache-control") or ""
        if name[0].isdigit():
            assert "immutable" in cc and "max-age=31536000" in cc, f"/metadata/{name}: Cache-Control {cc!r}"
        else:
            assert "max-age=" in cc and "immutable" not in cc, f"/metadata/{name}: Cache-Control {cc!r}"
    for t in sorted((pub.root / "torrents").glob("*.torrent")):
        r = edge.get(f"/torrents/{t.name}")
        assert r.status == 200 and r.body == t.read_bytes(), f"GET /torrents/{t.name}\n{edge.why(r, origin)}"
        assert "immutable" in (r.header("cache-control") or ""), r


# --------------------------------------------------------------------------
# 7. hostile and unknown paths
# --------------------------------------------------------------------------


HOSTILE = [
    b"/../etc/passwd",
    b"/../../../../../../etc/passwd",
    b"/targets/../../etc/passwd",
    b"/targets/%2e%2e/%2e%2e/etc/passwd",
    b"/targets/%2E%2E/%2E%2E/%2E%2E/etc/passwd",
    b"/targets/..%2f..%2f..%2fetc%2fpasswd",
    b"/targets/%252e%252e/%252e%252e/etc/passwd",
    b"/targets/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd",
    b"/targets/a%00b",
    b"/targets/frames/%00",
    b"//etc/passwd",
    b"///etc/passwd",
    b"/targets//etc/passwd",
    b"/targets\\..\\..\\etc\\passwd",
    b"/targets/..\\..\\etc\\passwd",
    b"/targets/%5c..%5c..%5cetc%5cpasswd",
    b"/metadata/../../etc/passwd",
    b"/metadata/%2e%2e/%2e%2e/etc/passwd",
    b"/torrents/../../etc/passwd",
    b"/t/../../etc/passwd",
    b"/t/x/../../../etc/passwd",
    b"/etc/passwd",
    b"/proc/self/environ",
    b"/objects",
    b"/metadata",
    b"/targets/",
    b"/targets/frames/",
    b"http://127.0.0.1/etc/passwd",
    b"*",
]
MALFORMED = [  # not valid request targets at all: refused, or the connection closed
    b"/targets/a\x00b",
    b"/targets/\xff\xfe",
    b"/targets/ a",
    b"etc/passwd",
]


def test_hostile_paths_are_refused(shared, pub):
    origin, edge = shared
    # Something real in the cache (and objects/) that a traversal could aim at.
    assert_served(edge, pub, SMALL, edge.get(pub.url_path(SMALL)), origin)
    obj_sha = pub.sha(SMALL)
    hostile = HOSTILE + [
        f"/objects/{obj_sha}".encode(),
        f"/targets/../objects/{obj_sha}".encode(),
        f"/targets/%2e%2e/objects/{obj_sha}".encode(),
        f"/targets/frames/../../objects/{obj_sha}".encode(),
        f"/{obj_sha}".encode(),
    ]
    before = origin.get_counts()
    failures = []
    for target in hostile + MALFORMED:
        r = edge.get(target)
        ok = r.status in (400, 404) or (target in MALFORMED and r.status is None)
        leaked = b"root:" in r.body or b"PRIVATE KEY" in r.body or (r.status == 200)
        if not ok or leaked:
            failures.append(str(r))
    after = origin.get_counts()
    fetched = {p: n - before.get(p, 0) for p, n in after.items() if n != before.get(p, 0) and not p.startswith("/metadata/")}
    assert not failures, (
        f"{len(failures)} hostile request targets were not refused with 400/404:\n" + "\n\n".join(failures)
        + f"\n--- edge stderr ---\n{edge.stderr()}"
    )
    assert not fetched, f"hostile paths made the edge fetch from the origin: {fetched}"
    assert edge.get("/healthz").status == 200


def test_unknown_paths_are_404_without_an_origin_request(shared, pub):
    origin, edge = shared
    small_sha = pub.sha(SMALL)
    unknown = [
        "/targets/frames/nonexistent.png",
        f"/targets/frames/{'0' * 64}.f001.png",
        f"/targets/frames/{small_sha}.f002.png",  # a real digest under another name
        f"/targets/checkout/{small_sha}.f001.png",  # the right name in the wrong directory
        f"/targets/frames/{small_sha}.f001.png.bak",
        "/targets/frames/f001.png",  # not the consistent-snapshot name
        f"/torrents/{'0' * 40}.{'0' * 16}.torrent",
        "/metadata/99.targets.json",
        "/metadata/keys.json",
        "/provenance/1.dsse.json",
        "/favicon.ico",
    ]
    before = origin.get_counts()
    for path in unknown:
        r = edge.get(path)
        assert_refused(edge, r, 404, "not_found", f"GET {path}")
    after = origin.get_counts()
    # The edge's own metadata refresh (timestamp, the next root) may run meanwhile.
    fetched = {p: n - before.get(p, 0) for p, n in after.items()
               if n != before.get(p, 0) and (not p.startswith("/metadata/") or p == "/metadata/99.targets.json")}
    assert not fetched, f"unknown paths made the edge ask the origin: {fetched}\n{origin.summary()}"


# --------------------------------------------------------------------------
# 8. oversized and slow headers
# --------------------------------------------------------------------------


def test_huge_header_is_refused_and_the_edge_keeps_serving(origins, edges, pub):
    origin = origins()
    edge = edges(origin)
    path = pub.url_path(SMALL)
    big = edge.get(path, {"X-Big": "a" * (64 * 1024)})
    assert big.status in (431, None), (
        f"a 64 KiB header must get 431 (or the connection closed)\n{edge.why(big)}"
    )
    many = edge.get(path, [(f"X-H{i}", "v") for i in range(1000)])
    assert many.status is None or many.status < 500, f"1000 headers: server error\n{edge.why(many)}"
    long_uri = edge.get("/targets/" + "a" * (64 * 1024))
    assert long_uri.status in (None, 400, 404, 414, 431), f"a 64 KiB request target\n{edge.why(long_uri)}"
    assert_served(edge, pub, SMALL, edge.get(path), origin)


def test_slow_header_client_is_disconnected_while_others_are_served(origins, edges, pub, swarmdrop_bin):
    field = find_field(edge_defaults(swarmdrop_bin), lambda k: "header" in k and "timeout" in k)
    origin = origins()
    edge = edges(origin, {field: Seconds(HEADER_TIMEOUT_S)})
    path = pub.url_path(TINY)

    sock = socket.create_connection((edge.host, edge.port), timeout=10)
    closed_after = None
    served = []
    t0 = time.monotonic()
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        while time.monotonic() - t0 < SLOW_CLIENT_BOUND_S:
            try:
                sock.send(b"a")  # one header byte a second
            except OSError:
                closed_after = time.monotonic() - t0
                break
            r = edge.get(path, timeout=10)
            served.append(r)
            assert r.status == 200 and r.body == pub.data(TINY), (
                f"another client was not served while the slow one was connected\n{edge.why(r)}"
            )
            if readable_within(sock, 1.0):
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                # A 408 and close, or a plain close: either ends the slow request.
                assert not data or data.startswith(b"HTTP/1.1 408") or data.startswith(b"HTTP/1.1 4"), (
                    f"the slow client got {data[:200]!r}"
                )
                closed_after = time.monotonic() - t0
                break
    finally:
        sock.close()
    assert closed_after is not None, (
        f"a client sending one header byte a second was still connected after {SLOW_CLIENT_BOUND_S}s "
        f"({field} = {HEADER_TIMEOUT_S}s)\n{edge.stderr()}"
    )
    assert served, "no request was made while the slow client was connected"
    assert_served(edge, pub, TINY, edge.get(path), origin)


# --------------------------------------------------------------------------
# 9. private drops
# --------------------------------------------------------------------------


def test_private_drop_admits_viewer_tokens(origins, edges, pub, keydir, gateway):
    origin = origins()
    edge = edges(origin, private_config(keydir))
    path = pub.url_path(SMALL)
    r = edge.get(path)
    assert_refused(edge, r, 401, "token_missing", f"GET {path} on a private drop without a token")
    assert origin.gets(path) == 0, "a request without a token made an origin fetch"

    tok = viewer_token(gateway)
    r = edge.get(path, {"Authorization": f"Bearer {tok}"})
    assert_served(edge, pub, SMALL, r, origin)
    r = edge.get(f"/t/{tok}{path}")
    assert_served(edge, pub, SMALL, r, origin)
    assert "private" in (r.header("cache-control") or ""), f"/t/<token>/ responses must be Cache-Control private\n{r}"
    r = edge.get(f"/t/{tok}{path}", {"Range": "bytes=0-99"})
    assert r.status == 206 and r.body == pub.data(SMALL)[:100], edge.why(r)
    r = edge.get(f"/t/{tok}/metadata/timestamp.json")
    assert r.status == 200 and r.body == (pub.root / "metadata" / "timestamp.json").read_bytes(), edge.why(r)


@pytest.mark.parametrize("kind", ["forged", "wrong_drop", "expired", "garbage"])
def test_private_drop_refuses_bad_tokens(request, origins, edges, pub, keydir, kind):
    origin = origins()
    edge = edges(origin, private_config(keydir))
    path = pub.url_path(SMALL)
    if kind == "forged":
        tok, code = flip_token_char(viewer_token(request.getfixturevalue("gateway"))), "bad_signature"
    elif kind == "wrong_drop":
        tok, code = viewer_token(request.getfixturevalue("other_drop_gateway")), "wrong_drop"
    elif kind == "expired":
        tok, code = viewer_token(request.getfixturevalue("short_gateway")), "expired"
        exp = parse_rfc3339(paseto_message(tok)["exp"])
        # A deliberate wait for the one-second token to expire (leeway 0).
        assert wait_until(lambda: utcnow() >= exp + timedelta(seconds=1), 5.0, poll=0.1)
    else:
        tok, code = "v4.public.bm90LWEtdG9rZW4", None
    r = edge.get(path, {"Authorization": f"Bearer {tok}"})
    assert_refused(edge, r, 401, code, f"GET {path} with a {kind} token (Bearer)")
    r = edge.get(f"/t/{tok}{path}")
    assert_refused(edge, r, 401, code, f"GET /t/<{kind} token>{path}")
    assert origin.gets(path) == 0, f"a {kind} token made an origin fetch\n{origin.summary()}"


def test_private_drop_token_classes_scope_targets(origins, edges, pub, keydir, narrow_gateway):
    origin = origins()
    edge = edges(origin, private_config(keydir))
    tok = viewer_token(narrow_gateway)  # grants checkout and keyframe, not bulk
    r = edge.get(pub.url_path(BULK), {"Authorization": f"Bearer {tok}"})
    assert_refused(edge, r, 403, "class_not_allowed", "a bulk target with a token without class bulk")
    r = edge.get(f"/t/{tok}{pub.url_path(BULK)}")
    assert_refused(edge, r, 403, "class_not_allowed", "a bulk target via /t/ with a token without class bulk")
    assert origin.gets(pub.url_path(BULK)) == 0, "a refused class made an origin fetch"
    assert_served(edge, pub, SMALL, edge.get(pub.url_path(SMALL), {"Authorization": f"Bearer {tok}"}), origin)


def test_private_drop_libtorrent_webseed_through_token_path(origins, edges, pub, keydir, gateway, tmp_path):
    origin = origins()
    edge = edges(origin, private_config(keydir))
    tok = viewer_token(gateway)
    torrent = pub.torrent(BULK)
    name = lt.torrent_info(str(torrent)).name()

    # Without a token the webseed is refused and nothing is downloaded.
    refused_ses = lt_webseed_session(LT_REFUSED_IP)
    refused_log = AlertLog({"refused": refused_ses})
    (tmp_path / "refused").mkdir()
    try:
        hr = lt_add_webseed(refused_ses, torrent, tmp_path / "refused", [edge.base + pub.rel(BULK)])
        saw = wait_until(lambda: refused_log.of("refused", lt.url_seed_alert), 30.0, on_poll=refused_log.pump)
        assert saw, f"libtorrent reported nothing about a refused webseed:\n{refused_log.summary()}"
        assert hr.status().num_pieces == 0, f"libtorrent got pieces without a token: {lt_status_line(hr)}"
    finally:
        refused_ses.pause()

    save = tmp_path / "lt"
    save.mkdir()
    ses = lt_webseed_session(LT_PRIVATE_IP)
    log = AlertLog({"lt": ses})
    try:
        h = lt_add_webseed(ses, torrent, save, [f"{edge.base}t/{tok}/{pub.rel(BULK)}"])
        if not lt_download(ses, h, log):
            probe = edge.get(f"/t/{tok}/{pub.rel(BULK)}", {"Range": "bytes=0-16383"})
            pytest.fail(
                f"libtorrent did not finish through /t/<token>/: {lt_status_line(h)}\n"
                f"alerts:\n{log.summary()}\nthe same URL asked directly:\n{edge.why(probe, origin)}",
                pytrace=False,
            )
    finally:
        ses.pause()
    assert sha256((save / name).read_bytes()) == pub.sha(BULK), "libtorrent's copy differs from the signed sha256"


# --------------------------------------------------------------------------
# 10. metrics
# --------------------------------------------------------------------------


def test_metrics_count_hits_misses_bytes_evictions_and_latency(origins, edges, pub):
    origin = origins()
    # A memory tier smaller than the extra keyframes together: it must evict.
    edge = edges(origin, {
        "memory_bytes": Size(3 * EXTRA_FRAME_BYTES),
        "memory_object_max": Size(EXTRA_FRAME_BYTES + 1024),
    })
    m0 = edge.metrics()
    for name in (M_REQUESTS, M_HITS, M_MISSES, M_COALESCED, M_ORIGIN_BYTES, M_SERVED_BYTES, M_EVICTIONS,
                 M_TIER_BYTES, M_VERIFY_FAILURES, M_LATENCY, M_FIRST_BYTE):
        need_metric(m0, name)

    def moved(before: str, after: str, name: str, **labels) -> float:
        return metric_sum(after, name, **labels) - metric_sum(before, name, **labels)

    n = pub.length(SMALL)
    assert_served(edge, pub, SMALL, edge.get(pub.url_path(SMALL)), origin, cache={"miss"})
    m1 = edge.metrics()
    assert moved(m0, m1, M_MISSES) == 1, metric_lines(m1, M_MISSES)
    assert moved(m0, m1, M_REQUESTS, **{"class": "keyframe", "cache": "miss"}) == 1, metric_lines(m1, M_REQUESTS)
    assert moved(m0, m1, M_HITS) == 0, metric_lines(m1, M_HITS)
    assert moved(m0, m1, M_ORIGIN_BYTES) >= n, metric_lines(m1, M_ORIGIN_BYTES)
    assert moved(m0, m1, M_SERVED_BYTES) >= n, metric_lines(m1, M_SERVED_BYTES)

    assert_served(edge, pub, SMALL, edge.get(pub.url_path(SMALL)), origin, cache={"hit-memory"})
    m2 = edge.metrics()
    assert moved(m1, m2, M_HITS) == 1, metric_lines(m2, M_HITS)
    assert moved(m1, m2, M_REQUESTS, **{"class": "keyframe", "cache": "hit-memory"}) == 1, metric_lines(m2, M_REQUESTS)
    assert moved(m1, m2, M_MISSES) == 0, "a hit counted as a miss"
    assert moved(m1, m2, M_ORIGIN_BYTES) == 0, "a hit fetched from the origin"
    assert moved(m1, m2, M_SERVED_BYTES) >= n, metric_lines(m2, M_SERVED_BYTES)

    frames = [p for p in pub.of_class("keyframe") if p.endswith(".bin")]
    assert len(frames) == EXTRA_FRAMES, frames

    def evicted() -> bool:
        for p in frames:
            r = edge.get(pub.url_path(p))
            assert r.status == 200 and r.sha256() == pub.sha(p), edge.why(r, origin)
        return metric_sum(edge.metrics(), M_EVICTIONS, tier=TIER_MEMORY) > 0

    assert wait_until(evicted, 15.0, poll=0.2), (
        f"{EXTRA_FRAMES} x {EXTRA_FRAME_BYTES} bytes through a {3 * EXTRA_FRAME_BYTES}-byte memory tier evicted nothing\n"
        + metric_lines(edge.metrics(), M_EVICTIONS)
    )
    m3 = edge.metrics()
    for tier in (TIER_MEMORY, TIER_DISK):
        assert metric_sum(m3, M_TIER_BYTES, tier=tier) > 0, f"{M_TIER_BYTES}{{tier={tier}}}\n{metric_lines(m3, M_TIER_BYTES)}"
    assert metric_sum(m3, M_TIER_BYTES, tier=TIER_MEMORY) <= 3 * EXTRA_FRAME_BYTES, metric_lines(m3, M_TIER_BYTES)
    # The tiers weigh entries in whole KiB: the disk gauge is objects/ rounded up per entry.
    objects = cache_objects(edge.cache_dir)
    on_disk = sum(p.stat().st_size for p in objects.values())
    gauge = metric_sum(m3, M_TIER_BYTES, tier=TIER_DISK)
    assert on_disk <= gauge <= on_disk + 1024 * len(objects), (
        f"{M_TIER_BYTES}{{tier=disk}} says {gauge}, objects/ holds {on_disk} bytes in {len(objects)} files"
    )
    assert metric_sum(m3, M_VERIFY_FAILURES) == 0, metric_lines(m3, M_VERIFY_FAILURES)
    # Every object response is counted once, by class and cache status.
    keyframe_requests = metric_sum(m3, M_REQUESTS, **{"class": "keyframe"})
    assert metric_sum(m3, M_REQUESTS, **{"class": "bulk"}) == 0, f"no bulk target was asked for\n{metric_lines(m3, M_REQUESTS)}"

    # Latency histograms carry the class and count every keyframe request.
    for hist in (M_LATENCY, M_FIRST_BYTE):
        counts = {lab.get("class"): v for lab, v in metric_samples(m3, hist + "_count")}
        assert counts.get("keyframe") == keyframe_requests, (
            f"{hist}_count{{class=keyframe}} is {counts.get('keyframe')}, {M_REQUESTS} counted {keyframe_requests}"
        )
        inf = [v for lab, v in metric_samples(m3, hist + "_bucket") if lab.get("class") == "keyframe" and lab.get("le") == "+Inf"]
        assert inf == [counts["keyframe"]], f"{hist}: keyframe +Inf bucket {inf} != count {counts['keyframe']}"
        assert not counts.get("bulk"), f"{hist}: bulk latencies recorded though no bulk target was asked for: {counts}"
