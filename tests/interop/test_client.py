"""``swarmdrop get URL``, the hybrid client, against real edges (``swarmdrop edge``) and
an HTTP origin with Range support on loopback:

- the whole example drop arrives through an edge, every file byte-identical to its signed
  target, with a per-class report and a decision log where every decision has a reason;
- an edge that serves corrupted bytes is refused and banned for the run at its first lie:
  the run completes from the honest edge, writes no corrupted byte, and counts the refusal;
- ``--paths origin`` fetches everything from the origin alone;
- a target that is not signed is refused by name.
"""

from __future__ import annotations

import hashlib
import json
import queue
import subprocess
import threading
import time
from pathlib import Path

import pytest

from edge_support import Origin, Published, start_edge
from test_serve import serve_config  # noqa: F401  (fixture)

RUN_TIMEOUT_S = 120.0


@pytest.fixture(scope="module")
def pub(pristine_published, pristine_drop) -> Published:
    return Published.load(pristine_published, pristine_drop)


@pytest.fixture
def origin(pub):
    o = Origin(pub.root)
    yield o
    o.stop()


@pytest.fixture
def edge(swarmdrop_bin, pub, origin, tmp_path):
    e = start_edge(swarmdrop_bin, origin=origin.url, cache_dir=tmp_path / "cache", root=pub.root_json,
                   log_path=tmp_path / "edge.stderr")
    yield e
    e.close()


def get(swarmdrop_bin: Path, origin_url: str, out: Path, *args: str) -> tuple[dict, subprocess.CompletedProcess]:
    proc = subprocess.run(
        [str(swarmdrop_bin), "get", origin_url, "--out", str(out), "--json", *args],
        capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
    )
    assert proc.returncode == 0, f"swarmdrop get failed:\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout), proc


def assert_every_target_matches(pub: Published, out: Path) -> None:
    for drop_path in pub.targets:
        got = (out / drop_path).read_bytes()
        assert hashlib.sha256(got).hexdigest() == pub.sha(drop_path), f"{drop_path} differs from its signed target"
    leftovers = [p for p in out.rglob("*.part")]
    assert not leftovers, f"part files left behind: {leftovers}"


def test_the_drop_arrives_through_an_edge(swarmdrop_bin, pub, origin, edge, tmp_path):
    out = tmp_path / "out"
    events = tmp_path / "events.jsonl"
    report, _ = get(swarmdrop_bin, origin.url, out, "--edge", edge.base, "--root", str(pub.root_json),
                    "--events", str(events))
    assert_every_target_matches(pub, out)
    assert set(report["classes"]) == set(pub.classes())
    for name, c in report["classes"].items():
        assert c["assets"] == len(pub.of_class(name))
        assert 0 <= c["p50_ms"] <= c["p99_ms"]
    total = sum(pub.length(p) for p in pub.targets)
    assert sum(report["bytes_by_path"].values()) == total
    assert report["bytes_by_path"].get("edge0", 0) == total, report["bytes_by_path"]
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    # Decisions, each with its reason; beside them, the ranges verified and the arrivals.
    decisions = [d for d in lines if "decision" in d]
    assert decisions and all(d.get("reason") for d in decisions)
    assert all(d["decision"] != "fetch" or d["asset_path"] in pub.targets for d in decisions)
    assert all("decision" in d or d.get("event") in ("verified", "arrived") for d in lines)
    arrived = [d["asset_path"] for d in lines if d.get("event") == "arrived"]
    assert sorted(arrived) == sorted(pub.targets)
    fetched = {d["fetch"] for d in decisions if d["decision"] == "fetch"}
    assert all(d["fetch"] in fetched for d in lines if d.get("event") == "verified")


def test_a_lying_edge_is_refused_and_bypassed(swarmdrop_bin, pub, origin, tmp_path):
    """Two mirrors serve the published tree over ranges: the liar answers fast with the
    first byte of every target flipped, the honest one 50 ms slower per request. The
    client tries the liar first (it measures faster), refuses each range that fails its
    digest (the liar's other pieces are good and may be kept: each is checked against its
    signed piece hash), and completes with every file intact."""
    liar, honest = Origin(pub.root), Origin(pub.root)
    try:
        for drop_path in pub.targets:
            liar.corrupt(pub.url_path(drop_path), offset=0)
        honest.set_delay(0.05)
        out = tmp_path / "out"
        report, _ = get(swarmdrop_bin, origin.url, out, "--edge", liar.url, "--edge", honest.url,
                        "--paths", "edge", "--root", str(pub.root_json))
        liar_requests = [r for r in liar.requests() if r[1].startswith("/targets/")]
    finally:
        liar.stop()
        honest.stop()
    assert liar_requests, "the liar was never asked for a target"
    assert_every_target_matches(pub, out)
    # Mirrors keep the labels of the order given (the liar is edge0) whatever order the
    # round-trip probe puts them in.
    refused = report["refused_by_path"]
    assert set(refused) == {"edge0"} and refused["edge0"] >= 1, f"refusals: {refused}"
    assert report["banned_mirrors"] == ["edge0"]
    # A ban is for the run: after the lie, every target request goes elsewhere (ranges
    # already under way when the lie arrived are the only others the liar saw).
    assert len(liar_requests) <= 1 + refused["edge0"] + 8, liar_requests
    assert sum(report["bytes_by_path"].values()) == sum(pub.length(p) for p in pub.targets)


def test_an_edge_with_bad_metadata_is_passed_over_for_the_next(swarmdrop_bin, pub, origin, tmp_path):
    """The fastest edge serves a timestamp.json with one byte flipped (a bad signature or
    not JSON at all). The refresh takes the file from the next mirror whose copy
    verifies instead of giving up: one lying edge must not stop every viewer."""
    liar, honest = Origin(pub.root), Origin(pub.root)
    try:
        liar.corrupt("/metadata/timestamp.json")
        honest.set_delay(0.05)
        out = tmp_path / "out"
        get(swarmdrop_bin, origin.url, out, "--edge", liar.url, "--edge", honest.url,
            "--paths", "edge", "--root", str(pub.root_json))
        asked_liar = [r for r in liar.requests() if r[1] == "/metadata/timestamp.json"]
        asked_honest = [r for r in honest.requests() if r[1] == "/metadata/timestamp.json"]
    finally:
        liar.stop()
        honest.stop()
    assert asked_liar, "the liar was never asked for timestamp.json"
    assert asked_honest, "the honest edge was never asked for timestamp.json"
    assert_every_target_matches(pub, out)


def test_origin_only(swarmdrop_bin, pub, origin, tmp_path):
    out = tmp_path / "out"
    report, _ = get(swarmdrop_bin, origin.url, out, "--paths", "origin", "--root", str(pub.root_json))
    assert_every_target_matches(pub, out)
    assert set(report["bytes_by_path"]) == {"origin"}


def test_an_unsigned_target_is_refused_by_name(swarmdrop_bin, pub, origin, tmp_path):
    proc = subprocess.run(
        [str(swarmdrop_bin), "get", origin.url, "--out", str(tmp_path / "out"), "--asset", "frames/nope.png",
         "--root", str(pub.root_json)],
        capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
    )
    assert proc.returncode != 0
    assert "frames/nope.png" in proc.stderr and "not a signed target" in proc.stderr, proc.stderr


def start_published_seed(swarmdrop_bin: Path, published: Path, ip: str) -> tuple[subprocess.Popen, str]:
    """``swarmdrop seed PUBLISHED`` on ``ip``; returns the process and its address."""
    proc = subprocess.Popen(
        [str(swarmdrop_bin), "seed", str(published), "--listen", f"{ip}:0", "--no-trackers"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    while True:
        line = proc.stderr.readline() if proc.stderr else ""
        assert line, f"swarmdrop seed exited ({proc.poll()})"
        if line.startswith("listening seed "):
            return proc, line.split()[-1]


def test_peers_carry_the_bulk_asset(swarmdrop_bin, pub, origin, edge, tmp_path):
    """With a seeder in the swarm, the bulk class (p2p first) comes from peers while
    keyframes and the checkout page (edge first) come from the edge."""
    seed, addr = start_published_seed(swarmdrop_bin, pub.root, "127.0.0.81")
    try:
        out = tmp_path / "out"
        report, _ = get(swarmdrop_bin, origin.url, out, "--edge", edge.base, "--root", str(pub.root_json),
                        "--peer", addr, "--listen", "127.0.0.82:0", "--no-trackers")
    finally:
        seed.terminate()
        seed.wait(timeout=10)
    assert_every_target_matches(pub, out)
    # The first pieces come from the edge until the seeder's bitfield arrives: the whole
    # asset takes about 180 ms here, and 10-13% of it went to the edge in a third of
    # runs (every fetch `meets_deadline`, none a hedge), so the bound leaves room for that.
    bulk = report["classes"]["bulk"]["bytes_by_path"]
    assert bulk.get("p2p", 0) >= 0.75 * sum(pub.length(p) for p in pub.of_class("bulk")), bulk
    assert report["bytes_by_path"].get("origin", 0) == 0


def test_a_viewer_serves_what_it_fetched_over_http(swarmdrop_bin, pub, origin, edge, tmp_path):
    """Viewer A has no peers: it fetches the bulk asset from the edge, hands every piece
    to its peer engine, and keeps seeding. Viewer B, allowed peers only, gets the bulk
    asset from A alone."""
    a_out, b_out = tmp_path / "a", tmp_path / "b"
    a = subprocess.Popen(
        [str(swarmdrop_bin), "get", origin.url, "--out", str(a_out), "--edge", edge.base,
         "--root", str(pub.root_json), "--listen", "127.0.0.83:0", "--no-trackers", "--seed-after"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in a.stderr], daemon=True).start()
    try:
        addr, deadline = None, time.monotonic() + RUN_TIMEOUT_S
        while True:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"viewer A did not finish within {RUN_TIMEOUT_S}s (exit {a.poll()})") from None
            if "listening peers " in line:
                addr = line.split()[-1]
            if "seeding until interrupted" in line:
                break
        assert addr, "viewer A never said where it listens for peers"
        bulk = pub.of_class("bulk")[0]
        report, _ = get(swarmdrop_bin, origin.url, b_out, "--paths", "p2p", "--asset", bulk,
                        "--root", str(pub.root_json), "--peer", addr, "--listen", "127.0.0.84:0", "--no-trackers")
    finally:
        a.terminate()
        a.wait(timeout=10)
    assert (b_out / bulk).read_bytes() == pub.data(bulk)
    assert set(report["bytes_by_path"]) == {"p2p"}


def test_the_drop_through_serve_edges_and_seeders(swarmdrop_bin, pub, serve_config, tmp_path):
    """The whole deployment on loopback: ``swarmdrop serve`` (origin, tracker, gateway),
    an edge in front of its origin, and ``swarmdrop seed PUBLISHED`` announcing to its
    tracker. A viewer takes an anonymous token, finds the seeder through the tracker,
    and every file matches its signed target."""
    from test_serve import start_serve

    serve = start_serve(swarmdrop_bin, pub.root, serve_config, tmp_path / "state.sqlite")
    edge = start_edge(swarmdrop_bin, origin=serve.origin, cache_dir=tmp_path / "cache", root=pub.root_json,
                      log_path=tmp_path / "edge.stderr")
    tracker = serve.tracker_url("http")
    seed = subprocess.Popen(
        [str(swarmdrop_bin), "seed", str(pub.root), "--listen", "127.0.0.85:0", "--no-trackers",
         "--tracker", tracker],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        from tracker_support import announce_params, compact_peers, http_get, peer_id, wait_until

        bulk_ih = bytes.fromhex(pub.targets[pub.of_class("bulk")[0]]["custom"]["p2p"]["infohash"])
        query = "&".join(f"{k}={v}" for k, v in announce_params(bulk_ih, peer_id(7), 6999, left=1))

        def seeder_announced() -> bool:
            answer = http_get(serve.port("tracker-http"), f"/announce?{query}", source="127.0.0.87")
            peers = compact_peers(answer.bdict().get(b"peers", b""))
            return any(host == "127.0.0.85" for host, _ in peers)

        assert wait_until(seeder_announced, 30.0, poll=0.2), "the seeder never announced to serve's tracker"
        out = tmp_path / "out"
        report, _ = get(swarmdrop_bin, serve.origin, out, "--edge", edge.base, "--root", str(pub.root_json),
                        "--gateway", f"http://127.0.0.1:{serve.port('gateway')}/", "--anonymous",
                        "--tracker", tracker, "--no-trackers", "--listen", "127.0.0.86:0")
    finally:
        seed.terminate()
        seed.wait(timeout=10)
        edge.close()
        serve.close()
    assert_every_target_matches(pub, out)
    assert report["classes"]["bulk"]["bytes_by_path"].get("p2p", 0) > 0, report["classes"]["bulk"]


LIVE_POLICY = """[drop]
name = "live-drop"
opens_at = "2026-01-01T00:00:00Z"
closes_at = "2036-01-01T00:00:00Z"

[[class]]
name = "segment"
budget_ms = 5000
paths = ["edge", "origin"]
poll_ms = 200

[[assets]]
glob = "seg/**"
class = "segment"
"""


def test_a_live_drop_is_followed(swarmdrop, swarmdrop_bin, keydir, tmp_path):
    """A live drop's second version is signed while the first is still arriving (the
    origin answers slowly): ``get --follow`` polls timestamp.json at the policy's
    ``poll_ms``, walks the new chain, and fetches every new asset — new paths and new
    bytes at a known path — then stops once nothing new has come for a while."""
    import os

    drop, published, out = tmp_path / "live", tmp_path / "published", tmp_path / "out"
    (drop / "seg").mkdir(parents=True)
    policy = tmp_path / "live.toml"
    policy.write_text(LIVE_POLICY)

    def segment(k: int) -> None:
        (drop / "seg" / f"s{k:03}.bin").write_bytes(os.urandom(48 << 10))

    for k in range(12):
        segment(k)
    swarmdrop.pack(drop, keydir, published, policy=policy)
    origin = Origin(published)
    origin.set_delay(0.25)
    proc = subprocess.Popen(
        [str(swarmdrop_bin), "get", origin.url, "--out", str(out), "--json", "--follow",
         "--follow-idle", "3", "--root", str(published / "metadata" / "1.root.json")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not any((out / "seg").glob("s*.bin")):
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "no segment of version 1 arrived"
            time.sleep(0.02)
        first_version_done = (out / "seg" / "s011.bin").exists()
        for k in range(12, 16):
            segment(k)
        segment(3)  # new bytes at a path the client already knows
        swarmdrop.pack(drop, keydir, published, policy=policy)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        origin.stop()
    assert proc.returncode == 0, stderr[-3000:]
    assert not first_version_done, "version 2 came only after version 1 had arrived"
    for path in sorted((drop / "seg").iterdir()):
        got = (out / "seg" / path.name).read_bytes()
        assert got == path.read_bytes(), f"{path.name} is not the latest signed version"
    report = json.loads(stdout)
    assert report["classes"]["segment"]["assets"] == 12 + 4 + 1, report["classes"]
    assert "version 2 of the drop: 5 new asset(s)" in stderr, stderr[-3000:]
