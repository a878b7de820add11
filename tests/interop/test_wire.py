"""swarmdrop's peer wire protocol against libtorrent (Python bindings, TCP only):

- libtorrent downloads the bulk asset from ``swarmdrop seed`` by direct peer address;
- ``swarmdrop get --p2p-only`` downloads it from a libtorrent seeder by direct address;
- both through our tracker as well.

Every download is compared byte for byte with the signed asset.
"""

from __future__ import annotations

import hashlib
import socket
import subprocess
from pathlib import Path

import pytest


from test_tracker import Bulk, bulk, trackers  # noqa: F401  (fixtures)
from tracker_support import AlertLog, lt_add, lt_session, wait_until

TRANSFER_TIMEOUT_S = 90.0
SEED_IP = "127.0.0.61"
LEECH_IP = "127.0.0.62"


def free_port(ip: str) -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


class Seed:
    def __init__(self, proc: subprocess.Popen, addr: tuple[str, int]):
        self.proc, self.addr = proc, addr
        self.metrics_addr: tuple[str, int] = ("", 0)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start_seed(swarmdrop_bin: Path, bulk: Bulk, *extra: str) -> Seed:  # noqa: F811
    port = free_port(SEED_IP)
    proc = subprocess.Popen(
        [str(swarmdrop_bin), "seed", str(bulk.torrent), "--data", str(bulk.seed_dir / bulk.name),
         "--listen", f"{SEED_IP}:{port}", "--metrics", f"{SEED_IP}:0", *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    seed = Seed(proc, (SEED_IP, port))
    for _ in range(2):
        line = proc.stderr.readline() if proc.stderr else ""
        if line.startswith("listening metrics "):
            host, _, mport = line.split()[-1].rpartition(":")
            seed.metrics_addr = (host, int(mport))
        elif not line.startswith("listening seed "):
            raise AssertionError(f"swarmdrop seed said {line!r} (exit {proc.poll()})")
    return seed


def seed_metrics(seed: Seed) -> str:
    import urllib.request

    host, port = seed.metrics_addr
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def libtorrent_download(bulk: Bulk, tmp_path: Path, trackers_: list[str], peer: tuple[str, int] | None,  # noqa: F811
                        **settings) -> Path:
    ses = lt_session(LEECH_IP, **settings)
    out = tmp_path / "lt-leech"
    out.mkdir()
    handle = lt_add(ses, bulk.torrent, out, trackers_)
    log = AlertLog({"leech": ses})
    if peer is not None:
        handle.connect_peer(peer)

    def done() -> bool:
        return handle.status().is_seeding

    try:
        assert wait_until(done, TRANSFER_TIMEOUT_S, poll=0.2, on_poll=log.pump), (
            f"libtorrent did not complete from swarmdrop: {handle.status().progress:.0%}\n{log.summary()}"
        )
    finally:
        ses.pause()
    return out / bulk.name


def test_libtorrent_downloads_from_swarmdrop_seed(swarmdrop_bin, bulk, tmp_path):  # noqa: F811
    seed = start_seed(swarmdrop_bin, bulk, "--no-trackers")
    try:
        got = libtorrent_download(bulk, tmp_path, [], seed.addr)
    finally:
        seed.close()
    assert got.read_bytes() == bulk.data, "libtorrent's copy differs from the signed asset"


def libtorrent_seeder(bulk: Bulk, trackers_: list[str], **settings):  # noqa: F811
    ses = lt_session(SEED_IP, **settings)
    handle = lt_add(ses, bulk.torrent, bulk.seed_dir, trackers_)
    log = AlertLog({"seed": ses})
    assert wait_until(lambda: handle.status().is_seeding, 30.0, poll=0.1, on_poll=log.pump), log.summary()
    port = ses.listen_port()
    return ses, handle, (SEED_IP, port)


def test_swarmdrop_get_downloads_from_libtorrent(swarmdrop_bin, bulk, tmp_path):  # noqa: F811
    ses, _, addr = libtorrent_seeder(bulk, [])
    try:
        out = tmp_path / "sd-leech"
        proc = subprocess.run(
            [str(swarmdrop_bin), "get", "--p2p-only", str(bulk.torrent), "--out", str(out),
             "--peer", f"{addr[0]}:{addr[1]}", "--no-trackers"],
            capture_output=True, text=True, timeout=TRANSFER_TIMEOUT_S,
        )
    finally:
        ses.pause()
    assert proc.returncode == 0, f"swarmdrop get failed:\n{proc.stderr[-2000:]}"
    assert (out / bulk.name).read_bytes() == bulk.data, "swarmdrop's copy differs from the signed asset"


def test_libtorrent_finds_swarmdrop_seed_through_the_tracker(swarmdrop_bin, bulk, trackers, tmp_path):  # noqa: F811
    t = trackers("--infohash", bulk.infohash)
    url = t.http_url("/announce")
    seed = start_seed(swarmdrop_bin, bulk, "--no-trackers", "--tracker", url)
    try:
        got = libtorrent_download(bulk, tmp_path, [url], None)
    finally:
        seed.close()
    assert got.read_bytes() == bulk.data


def get_through_tracker(swarmdrop_bin: Path, bulk: Bulk, out: Path, url: str) -> subprocess.CompletedProcess:  # noqa: F811
    """``swarmdrop get --p2p-only`` finding its peers through the tracker at ``url`` only."""
    return subprocess.run(
        [str(swarmdrop_bin), "get", "--p2p-only", str(bulk.torrent), "--out", str(out),
         "--no-trackers", "--tracker", url, "--listen", f"{LEECH_IP}:0"],
        capture_output=True, text=True, timeout=TRANSFER_TIMEOUT_S,
    )


def test_swarmdrop_get_finds_libtorrent_through_the_tracker(swarmdrop_bin, bulk, trackers, tmp_path):  # noqa: F811
    t = trackers("--infohash", bulk.infohash)
    url = t.http_url("/announce")
    ses, _, _ = libtorrent_seeder(bulk, [url])
    try:
        out = tmp_path / "sd-leech"
        proc = get_through_tracker(swarmdrop_bin, bulk, out, url)
    finally:
        ses.pause()
    assert proc.returncode == 0, f"swarmdrop get failed:\n{proc.stderr[-2000:]}"
    assert (out / bulk.name).read_bytes() == bulk.data


def test_mixed_swarm_completes(swarmdrop_bin, bulk, trackers, tmp_path):  # noqa: F811
    """A libtorrent seeder, two swarmdrop leechers and a libtorrent leecher, through our
    tracker: every one completes with the signed bytes."""
    t = trackers("--infohash", bulk.infohash)
    url = t.http_url("/announce")
    seeder, _, _ = libtorrent_seeder(bulk, [url])
    getters = []
    try:
        for n, ip in enumerate(("127.0.0.63", "127.0.0.64")):
            out = tmp_path / f"sd-{n}"
            getters.append((out, subprocess.Popen(
                [str(swarmdrop_bin), "get", "--p2p-only", str(bulk.torrent), "--out", str(out),
                 "--no-trackers", "--tracker", url, "--listen", f"{ip}:0"],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            )))
        got = libtorrent_download(bulk, tmp_path, [url], None)
        for out, proc in getters:
            _, err = proc.communicate(timeout=TRANSFER_TIMEOUT_S)
            assert proc.returncode == 0, f"swarmdrop get failed:\n{err[-2000:]}"
            assert (out / bulk.name).read_bytes() == bulk.data
    finally:
        for _, proc in getters:
            if proc.poll() is None:
                proc.kill()
        seeder.pause()
    assert got.read_bytes() == bulk.data


def test_swarmdrop_get_redials_a_peer_that_was_not_there_yet(swarmdrop_bin, bulk, tmp_path):  # noqa: F811
    """The only peer named is down when `get` starts; a libtorrent seeder comes up at that
    address a moment later. The download must not stall on the failed first dial: it
    dials again after its backoff and completes, and /metrics counts the redial."""
    import time
    import urllib.request

    port = free_port(SEED_IP)
    out = tmp_path / "sd-leech"
    proc = subprocess.Popen(
        [str(swarmdrop_bin), "get", "--p2p-only", str(bulk.torrent), "--out", str(out),
         "--peer", f"{SEED_IP}:{port}", "--no-trackers", "--metrics", f"{LEECH_IP}:0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    seeder = None
    try:
        metrics_url = None
        while metrics_url is None:
            line = proc.stderr.readline() if proc.stderr else ""
            assert line, f"swarmdrop get ended early (exit {proc.poll()})"
            if line.startswith("listening metrics "):
                metrics_url = f"http://{line.split()[-1]}/metrics"
        time.sleep(1.0)  # the first dial has been refused by now
        seeder = lt_session(SEED_IP, listen_interfaces=f"{SEED_IP}:{port}")
        lt_add(seeder, bulk.torrent, bulk.seed_dir, [])
        redials = ""
        deadline = time.monotonic() + TRANSFER_TIMEOUT_S
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(metrics_url, timeout=5) as r:
                    redials = next((x for x in r.read().decode().splitlines()
                                    if x.startswith("swarmdrop_peer_redials_total ")), redials)
            except OSError:
                pass  # the run may end between the poll and the scrape
            time.sleep(0.2)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        if seeder is not None:
            seeder.pause()
    assert proc.returncode == 0, f"swarmdrop get failed:\n{err[-2000:]}"
    assert (out / bulk.name).read_bytes() == bulk.data
    assert redials and int(redials.split()[-1]) >= 1, f"no redial counted: {redials!r}"


def raw_peer(addr: tuple[str, int], payload: bytes, read_for: float = 3.0) -> bytes:
    """Connects, sends ``payload``, returns what came back until the peer closed."""
    with socket.create_connection(addr, timeout=5) as s:
        s.sendall(payload)
        s.settimeout(read_for)
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
        except (TimeoutError, socket.timeout, ConnectionResetError):
            pass
        return data


def handshake(info_hash: bytes) -> bytes:
    return b"\x13BitTorrent protocol" + bytes(8) + info_hash + b"-PY0001-123456789012"


@pytest.mark.parametrize("kind", ["wrong_infohash", "huge_length", "unrequested_piece", "bad_bitfield",
                                  "index_past_end", "request_flood", "garbage"])
def test_bad_peers_are_closed_and_the_seed_keeps_serving(swarmdrop_bin, bulk, tmp_path, kind):  # noqa: F811
    import struct

    seed = start_seed(swarmdrop_bin, bulk, "--no-trackers")
    try:
        ih = bulk.ih
        body = {
            "wrong_infohash": handshake(bytes(20)),
            "huge_length": handshake(ih) + struct.pack(">I", 0xFFFFFFFF),
            "unrequested_piece": handshake(ih) + struct.pack(">IBII", 9 + 4, 7, 0, 0) + b"evil",
            "bad_bitfield": handshake(ih) + struct.pack(">IB", 1 + 1000, 5) + b"\xff" * 1000,
            "index_past_end": handshake(ih) + struct.pack(">IBI", 5, 4, 1_000_000),
            "request_flood": handshake(ih) + b"".join(
                struct.pack(">IBIII", 13, 6, 0, i * 16384 % (1 << 20), 16384) for i in range(2000)),
            # Not a BitTorrent handshake, so it is read as MSE: no sync marker turns up.
            "garbage": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + bytes(range(256)) * 4,
        }[kind]
        raw_peer(seed.addr, body)
        # Each is closed with its reason, counted (an unrequested block is counted).
        metric, label = {
            "wrong_infohash": ("swarmdrop_peer_closed_total", 'reason="wrong_infohash"'),
            "huge_length": ("swarmdrop_peer_closed_total", 'reason="message_too_long"'),
            "unrequested_piece": ("swarmdrop_peer_unrequested_blocks_total", ""),
            "bad_bitfield": ("swarmdrop_peer_closed_total", 'reason="bad_bitfield"'),
            "index_past_end": ("swarmdrop_peer_closed_total", 'reason="bad_piece_index"'),
            "request_flood": ("swarmdrop_peer_closed_total", 'reason="request_flood"'),
            "garbage": ("swarmdrop_peer_closed_total", 'reason="mse_no_sync"'),
        }[kind]

        def counted() -> bool:
            return any(
                line.startswith(metric) and label in line and float(line.split()[-1]) >= 1
                for line in seed_metrics(seed).splitlines()
            )

        assert wait_until(counted, 5.0, poll=0.1), (
            f"no {metric} {{{label}}} >= 1 after {kind}:\n"
            + "\n".join(ln for ln in seed_metrics(seed).splitlines() if "swarmdrop_peer" in ln)
        )
        # The seed still serves an honest client afterwards.
        assert seed.proc.poll() is None, f"swarmdrop seed exited after {kind}"
        got = libtorrent_download(bulk, tmp_path, [], seed.addr)
        assert got.read_bytes() == bulk.data
    finally:
        seed.close()


def magnet_of(bulk: Bulk) -> str:  # noqa: F811
    return f"magnet:?xt=urn:btih:{bulk.infohash}&dn={bulk.name}"


def test_libtorrent_resolves_a_magnet_from_swarmdrop_seed(swarmdrop_bin, bulk, tmp_path):  # noqa: F811
    import libtorrent as lt

    seed = start_seed(swarmdrop_bin, bulk, "--no-trackers")
    ses = lt_session(LEECH_IP)
    try:
        out = tmp_path / "lt-magnet"
        out.mkdir()
        atp = lt.parse_magnet_uri(magnet_of(bulk))
        atp.save_path = str(out)
        atp.flags &= ~lt.torrent_flags.auto_managed
        atp.flags &= ~lt.torrent_flags.paused
        atp.flags |= lt.torrent_flags.disable_dht | lt.torrent_flags.disable_lsd | lt.torrent_flags.disable_pex
        handle = ses.add_torrent(atp)
        handle.connect_peer(seed.addr)
        log = AlertLog({"leech": ses})
        assert wait_until(lambda: handle.status().has_metadata, 30.0, poll=0.1, on_poll=log.pump), (
            f"libtorrent got no metadata from swarmdrop seed\n{log.summary()}"
        )
        assert wait_until(lambda: handle.status().is_seeding, TRANSFER_TIMEOUT_S, poll=0.2, on_poll=log.pump), (
            log.summary()
        )
    finally:
        ses.pause()
        seed.close()
    assert (out / bulk.name).read_bytes() == bulk.data


def test_swarmdrop_get_resolves_a_magnet_from_libtorrent(swarmdrop_bin, bulk, tmp_path):  # noqa: F811
    ses, _, addr = libtorrent_seeder(bulk, [])
    try:
        out = tmp_path / "sd-magnet"
        proc = subprocess.run(
            [str(swarmdrop_bin), "get", "--p2p-only", magnet_of(bulk), "--out", str(out),
             "--peer", f"{addr[0]}:{addr[1]}", "--no-trackers"],
            capture_output=True, text=True, timeout=TRANSFER_TIMEOUT_S,
        )
    finally:
        ses.pause()
    assert proc.returncode == 0, f"swarmdrop get (magnet) failed:\n{proc.stderr[-2000:]}"
    assert (out / bulk.name).read_bytes() == bulk.data


def encryption(policy: str, level: str) -> dict:
    """libtorrent settings for protocol encryption (MSE) both ways: ``policy`` is forced,
    enabled or disabled; ``level`` is plaintext, rc4 or both."""
    import libtorrent as lt

    return {
        "out_enc_policy": int(getattr(lt.enc_policy, policy)),
        "in_enc_policy": int(getattr(lt.enc_policy, policy)),
        "allowed_enc_level": int(getattr(lt.enc_level, level)),
    }


def transports(seed: Seed) -> dict[str, float]:
    return {
        line.split('"')[1]: float(line.split()[-1])
        for line in seed_metrics(seed).splitlines()
        if line.startswith("swarmdrop_peer_connections_total{")
    }


def test_libtorrent_default_encryption_is_answered_at_once(swarmdrop_bin, bulk, tmp_path):  # noqa: F811
    """libtorrent opens with MSE by default; the seed answers it (and both pick plaintext)
    instead of hanging up and making libtorrent retry in plaintext."""
    seed = start_seed(swarmdrop_bin, bulk, "--no-trackers")
    try:
        got = libtorrent_download(bulk, tmp_path, [], seed.addr)
        assert transports(seed) == {"mse_plain": 1.0}, seed_metrics(seed)
        assert "not_bittorrent" not in seed_metrics(seed)
    finally:
        seed.close()
    assert got.read_bytes() == bulk.data


def test_libtorrent_forcing_rc4_downloads_from_swarmdrop_seed(swarmdrop_bin, bulk, tmp_path):  # noqa: F811
    seed = start_seed(swarmdrop_bin, bulk, "--no-trackers")
    try:
        got = libtorrent_download(bulk, tmp_path, [], seed.addr, **encryption("forced", "rc4"))
        assert transports(seed) == {"mse_rc4": 1.0}, seed_metrics(seed)
    finally:
        seed.close()
    assert got.read_bytes() == bulk.data, "libtorrent's RC4 copy differs from the signed asset"


@pytest.mark.parametrize("mode,level", [("prefer", "both"), ("require", "rc4")])
def test_swarmdrop_get_dials_libtorrent_with_mse(swarmdrop_bin, bulk, tmp_path, mode, level):  # noqa: F811
    """Outgoing MSE: against a libtorrent that refuses plain BitTorrent (and, for
    ``require``, accepts only an RC4 payload stream)."""
    ses, _, addr = libtorrent_seeder(bulk, [], **encryption("forced", level))
    try:
        out = tmp_path / "sd-mse"
        proc = subprocess.run(
            [str(swarmdrop_bin), "get", "--p2p-only", str(bulk.torrent), "--out", str(out),
             "--peer", f"{addr[0]}:{addr[1]}", "--no-trackers", "--encryption", mode],
            capture_output=True, text=True, timeout=TRANSFER_TIMEOUT_S,
        )
    finally:
        ses.pause()
    assert proc.returncode == 0, f"swarmdrop get --encryption {mode} failed:\n{proc.stderr[-2000:]}"
    assert (out / bulk.name).read_bytes() == bulk.data


def test_a_seed_requiring_encryption_refuses_plain_peers(swarmdrop_bin, bulk, tmp_path):  # noqa: F811
    seed = start_seed(swarmdrop_bin, bulk, "--no-trackers", "--encryption", "require")
    try:
        raw_peer(seed.addr, handshake(bulk.ih))

        def refused() -> bool:
            return 'reason="plaintext_refused"' in seed_metrics(seed)

        assert wait_until(refused, 5.0, poll=0.1), seed_metrics(seed)
        # An RC4 libtorrent is still served.
        got = libtorrent_download(bulk, tmp_path, [], seed.addr, **encryption("forced", "rc4"))
    finally:
        seed.close()
    assert got.read_bytes() == bulk.data


def test_seed_published_serves_every_torrent_on_one_port(swarmdrop_bin, pristine_published, pristine_drop, tmp_path):
    """``swarmdrop seed PUBLISHED`` verifies the drop, then seeds every asset with a
    torrent from one port. Connections are routed by the info hash they name: libtorrent
    fetches every torrent from that one address over MSE (its default), ``swarmdrop get``
    fetches one in plain BitTorrent, and each copy is the signed asset."""
    import libtorrent as lt
    from sd_interop import signed_targets

    p2p = {path: info for path, info in signed_targets(pristine_published).items()
           if "p2p" in info.get("custom", {})}
    assert len(p2p) >= 3, f"the example drop should have several torrents: {sorted(p2p)}"
    port = free_port(SEED_IP)
    proc = subprocess.Popen(
        [str(swarmdrop_bin), "seed", str(pristine_published), "--listen", f"{SEED_IP}:{port}",
         "--no-trackers", "--metrics", f"{SEED_IP}:0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    seed = Seed(proc, (SEED_IP, port))
    try:
        seeding = 0
        while True:
            line = proc.stderr.readline() if proc.stderr else ""
            assert line, f"swarmdrop seed PUBLISHED exited ({proc.poll()}) after {seeding} torrents"
            seeding += line.startswith("seeding ")
            if line.startswith("listening metrics "):
                host, _, mport = line.split()[-1].rpartition(":")
                seed.metrics_addr = (host, int(mport))
                break
        assert seeding == len(p2p), f"seeding {seeding} torrents, the drop has {len(p2p)}"
        ses = lt_session(LEECH_IP)
        handles = {}
        for path, info in p2p.items():
            out = tmp_path / "lt" / path.replace("/", "_")
            out.mkdir(parents=True)
            handle = lt_add(ses, pristine_published / info["custom"]["p2p"]["torrent"], out, [])
            handle.connect_peer(seed.addr)
            handles[path] = (handle, out)
        log = AlertLog({"leech": ses})
        try:
            assert wait_until(lambda: all(h.status().is_seeding for h, _ in handles.values()),
                              TRANSFER_TIMEOUT_S, poll=0.2, on_poll=log.pump), (
                {p: f"{h.status().progress:.0%}" for p, (h, _) in handles.items()}, log.summary())
        finally:
            ses.pause()
        for path, (handle, out) in handles.items():
            name = handle.torrent_file().name()
            assert (out / name).read_bytes() == (pristine_drop / path).read_bytes(), path
        assert transports(seed).get("mse_plain", 0) == len(p2p), seed_metrics(seed)
        from sd_interop import BULK_DROP_PATH

        torrent = pristine_published / p2p[BULK_DROP_PATH]["custom"]["p2p"]["torrent"]
        got = subprocess.run(
            [str(swarmdrop_bin), "get", "--p2p-only", str(torrent), "--out", str(tmp_path / "sd"),
             "--peer", f"{SEED_IP}:{port}", "--no-trackers"],
            capture_output=True, text=True, timeout=TRANSFER_TIMEOUT_S,
        )
        assert got.returncode == 0, got.stderr[-2000:]
        name = lt.torrent_info(str(torrent)).name()
        assert (tmp_path / "sd" / name).read_bytes() == (pristine_drop / BULK_DROP_PATH).read_bytes()
        assert transports(seed).get("plain", 0) == 1, seed_metrics(seed)
    finally:
        seed.close()


def test_peers_meet_through_a_udp_tracker(swarmdrop_bin, bulk, trackers, tmp_path):  # noqa: F811
    """BEP 15 from the driver: ``swarmdrop seed`` announces over UDP, a swarmdrop leecher
    finds it the same way, and libtorrent (also over UDP) downloads from the swarm."""
    t = trackers("--infohash", bulk.infohash)
    url = t.udp_url()
    seed = start_seed(swarmdrop_bin, bulk, "--no-trackers", "--tracker", url)
    try:
        out = tmp_path / "sd-udp"
        proc = get_through_tracker(swarmdrop_bin, bulk, out, url)
        assert proc.returncode == 0, f"swarmdrop get over a UDP tracker failed:\n{proc.stderr[-2000:]}"
        assert (out / bulk.name).read_bytes() == bulk.data
        got = libtorrent_download(bulk, tmp_path, [url], None)
    finally:
        seed.close()
    assert got.read_bytes() == bulk.data
