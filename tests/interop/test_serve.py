"""`swarmdrop serve` (origin + tracker + gateway in one process) against independent clients.

* python-tuf's ``ngclient`` refreshes from serve's origin and downloads every target;
* the origin's HTTP: HEAD, ranges (206/416), ETags and ``If-None-Match``, ``Cache-Control``
  by mutability, 404 without listings, hostile paths (raw sockets, unnormalised);
* a ``swarmdrop edge`` whose origin is serve's serves an asset byte for byte;
* libtorrent (over UDP) finds a ``swarmdrop seed`` (announcing over HTTP) through
  serve's tracker, which knows the drop's info hashes without being told;
* the gateway issues an anonymous proof-of-work token; a revoked token stays revoked
  after serve restarts on the same state file;
* SIGTERM: a download in flight completes, the process exits 0 within seconds, and the
  state file is closed (its WAL folded back).

Everything listens on 127.0.0.1 port 0; serve reports each address on stderr.
"""

from __future__ import annotations

import queue
import re
import signal
import socket
import subprocess
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import pytest

from edge_support import _toml, build_request, raw_request, start_edge
from gateway_support import Gateway, assert_ok, assert_refused, solve_pow
from sd_interop import BULK_DROP_PATH, base_env, signed_targets, target_file_path
from test_tracker import bulk  # noqa: F401  (fixture)
from test_tuf_ngclient import make_updater, new_client_dir
from test_wire import libtorrent_download, start_seed
from tracker_support import announce_params, http_get, peer_id, wait_until

READY_RE = re.compile(r"listening (\S+) (\S+)")
SERVICES = {"origin", "tracker-http", "tracker-udp", "gateway"}
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0

DOMAIN = "drop.example"
URI = "https://drop.example/login"
DROP = "genesis-mint"
ADMIN_TOKEN = "serve-interop-admin-7c1f"
YEAR = "public, max-age=31536000, immutable"


def write_serve_config(path: Path, sections: Mapping[str, Mapping[str, Any]]) -> Path:
    """TOML with one ``[section]`` per key; a dict inside a section becomes ``[section.sub]``."""
    lines: list[str] = []

    def table(name: str, fields: Mapping[str, Any]) -> None:
        lines.extend(["", f"[{name}]"])
        lines.extend(f"{k} = {_toml(v)}" for k, v in fields.items() if not isinstance(v, Mapping))
        for k, v in fields.items():
            if isinstance(v, Mapping):
                table(f"{name}.{k}", v)

    for name, fields in sections.items():
        table(name, fields)
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Serve:
    proc: subprocess.Popen
    addrs: dict[str, tuple[str, int]]
    argv: list[str]
    stderr_lines: list[str] = field(default_factory=list, repr=False)

    def port(self, service: str) -> int:
        return self.addrs[service][1]

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port('origin')}/"

    def tracker_url(self, proto: str) -> str:
        return f"{proto}://127.0.0.1:{self.port(f'tracker-{proto}')}/announce"

    def stderr(self) -> str:
        return "\n".join(self.stderr_lines[-60:])

    def gateway(self) -> Gateway:
        return Gateway(
            proc=self.proc, port=self.port("gateway"), config=Path(self.argv[-1]), domain=DOMAIN,
            uri=URI, chain_id=1, stderr_lines=self.stderr_lines, admin_token=ADMIN_TOKEN,
        )

    def get(self, target: str | bytes, headers: Mapping[str, str] | None = None, method: str = "GET"):
        """One request to the origin over a raw socket, ``target`` sent exactly as given."""
        assert self.proc.poll() is None, f"serve exited with {self.proc.returncode}\n{self.stderr()}"
        port = self.port("origin")
        return raw_request(port, build_request(method, target, headers, host=f"127.0.0.1:{port}"))

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> tuple[int, float]:
        """SIGTERM; (exit code, seconds it took)."""
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
            pytest.fail(f"serve did not exit within {timeout}s of SIGTERM\n{self.stderr()}", pytrace=False)
        return code, time.monotonic() - t0

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)


def start_serve(bin_path: Path, published: Path, config: Path, state: Path, *extra: str) -> Serve:
    """Start ``swarmdrop serve`` and wait (bounded) for every ``listening`` line."""
    argv = [
        str(bin_path), "serve", str(published), "--state", str(state),
        "--origin", "127.0.0.1:0", "--tracker-http", "127.0.0.1:0", "--tracker-udp", "127.0.0.1:0",
        "--gateway", "127.0.0.1:0", *extra, "--config", str(config),
    ]
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env=base_env(), text=True, bufsize=1,
    )
    lines: list[str] = []
    ready: "queue.Queue[tuple[str, str] | None]" = queue.Queue()

    def _drain() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line.rstrip("\n"))
            m = READY_RE.match(line)
            if m:
                ready.put((m.group(1), m.group(2)))
        ready.put(None)

    threading.Thread(target=_drain, daemon=True).start()
    addrs: dict[str, tuple[str, int]] = {}
    deadline = time.monotonic() + READY_TIMEOUT_S
    while set(addrs) != SERVICES:
        try:
            item = ready.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            item = None
        if item is None:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=5)
            pytest.fail(
                f"serve did not report {sorted(SERVICES)} within {READY_TIMEOUT_S}s (got {addrs}, "
                f"exit {proc.returncode})\ncommand: {' '.join(argv)}\n--- config ---\n{config.read_text()}"
                "--- stderr ---\n" + "\n".join(lines),
                pytrace=False,
            )
        host, _, port = item[1].rpartition(":")
        addrs[item[0]] = (host, int(port))
    return Serve(proc, addrs, argv, lines)


@pytest.fixture(scope="module")
def serve_config(keydir, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("serve-config")
    return write_serve_config(d / "serve.toml", {
        "serve": {"drain_timeout": "3s"},
        "origin": {"mutable_max_age": "2s"},
        "gateway": {
            "domain": DOMAIN, "uri": URI, "drop": DROP, "signing_key": keydir / "timestamp.key",
            "allow_anonymous": True, "admin_token": ADMIN_TOKEN,
            "trust": {"base_difficulty": 8},
        },
    })


@pytest.fixture(scope="module")
def served(swarmdrop_bin, pristine_published, serve_config, tmp_path_factory):
    """One serve over the session's published drop, for the tests that only read."""
    state = tmp_path_factory.mktemp("serve-state") / "state.sqlite"
    s = start_serve(swarmdrop_bin, pristine_published, serve_config, state)
    yield s
    s.close()


# --------------------------------------------------------------------------
# the origin
# --------------------------------------------------------------------------


def test_ngclient_refreshes_and_downloads_every_target(served, pristine_published, pristine_drop, tmp_path):
    client = new_client_dir(tmp_path, pristine_published)
    updater = make_updater(client, served.origin)
    updater.refresh()
    targets = signed_targets(pristine_published)
    assert targets, "the published drop has no targets"
    for drop_path in targets:
        info = updater.get_targetinfo(drop_path)
        assert info is not None, f"ngclient does not see {drop_path} through serve"
        got = Path(updater.download_target(info, filepath=str(tmp_path / "dl" / drop_path.replace("/", "_"))))
        assert got.read_bytes() == (pristine_drop / drop_path).read_bytes(), drop_path


def test_origin_http_semantics(served, pristine_published):
    targets = signed_targets(pristine_published)
    drop_path, info = next((p, i) for p, i in targets.items() if i["length"] > 100)
    sha = info["hashes"]["sha256"]
    path = "/" + target_file_path(pristine_published, drop_path, info).relative_to(pristine_published).as_posix()
    data = target_file_path(pristine_published, drop_path, info).read_bytes()

    r = served.get(path)
    assert r.status == 200 and r.body == data, str(r)
    assert r.header("etag") == f'"{sha}"', str(r)
    assert r.header("cache-control") == YEAR
    assert r.header("accept-ranges") == "bytes"
    assert int(r.header("content-length")) == len(data)

    head = served.get(path, method="HEAD")
    assert head.status == 200 and head.body == b"" and int(head.header("content-length")) == len(data), str(head)

    part = served.get(path, {"Range": "bytes=10-99"})
    assert part.status == 206 and part.body == data[10:100], str(part)
    assert part.header("content-range") == f"bytes 10-99/{len(data)}"
    suffix = served.get(path, {"Range": "bytes=-7"})
    assert suffix.status == 206 and suffix.body == data[-7:], str(suffix)
    past = served.get(path, {"Range": f"bytes={len(data)}-"})
    assert past.status == 416 and past.header("content-range") == f"bytes */{len(data)}", str(past)
    stale = served.get(path, {"Range": "bytes=0-3", "If-Range": '"something-else"'})
    assert stale.status == 200 and stale.body == data, "If-Range with another ETag must send everything"

    again = served.get(path, {"If-None-Match": r.header("etag")})
    assert again.status == 304 and again.body == b"", str(again)

    ts = served.get("/metadata/timestamp.json")
    assert ts.status == 200 and ts.body == (pristine_published / "metadata" / "timestamp.json").read_bytes()
    assert ts.header("cache-control") == "public, max-age=2", "timestamp.json must not be cached long"
    assert served.get("/metadata/timestamp.json", {"If-None-Match": ts.header("etag")}).status == 304
    assert served.get("/metadata/1.root.json").header("cache-control") == YEAR
    assert served.get("/metadata/root.json").header("cache-control") == "public, max-age=2"
    prov = sorted((pristine_published / "provenance").iterdir())[-1]
    assert served.get(f"/provenance/{prov.name}").body == prov.read_bytes()
    torrent = sorted((pristine_published / "torrents").iterdir())[0]
    t = served.get(f"/torrents/{torrent.name}")
    assert t.status == 200 and t.body == torrent.read_bytes() and t.header("cache-control") == YEAR
    assert t.header("content-type") == "application/x-bittorrent"

    # Nothing else, and never a listing.
    for missing in ("/", "/targets/", "/metadata", "/metadata/99.root.json", "/keys/root.key",
                    "/.swarmdrop-pack.lock", "/targets/nope.bin"):
        got = served.get(missing)
        assert got.status in (400, 404) and got.error_code() in ("not_found", "bad_path"), str(got)
    assert served.get("/metadata/99.root.json").status == 404  # TUF clients probe for the next root
    assert served.get(path, method="POST").status == 405


@pytest.mark.parametrize("target", [
    "/../etc/passwd",
    "/targets/../../etc/passwd",
    "/targets/%2e%2e/%2e%2e/etc/passwd",
    "/targets/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
    "/metadata/..%2f..%2fetc%2fpasswd",
    "/targets/a%00b",
    "/targets/a%5c..%5cb",
    "//etc/passwd",
    "http://127.0.0.1/etc/passwd",
    "/%2Fetc%2Fpasswd",
])
def test_hostile_paths_are_refused(served, target):
    r = served.get(target)
    assert r.status in (400, 404), str(r)
    assert b"root:" not in r.body, f"{target!r} leaked a system file:\n{r}"


def test_metrics_count_requests_and_bytes(served):
    before = served.get("/metrics").body.decode()
    served.get("/metadata/1.root.json")
    served.get("/nothing-here")
    text = served.get("/metrics").body.decode()

    def value(t: str, name: str) -> float:
        m = re.search(rf"^{re.escape(name)} (\S+)$", t, re.M)
        assert m, f"{name} missing from /metrics:\n{t}"
        return float(m.group(1))

    ok = 'swarmdrop_origin_requests_total{status="200"}'
    nf = 'swarmdrop_origin_requests_total{status="404"}'
    assert value(text, ok) >= value(before, ok) + 1
    assert value(text, nf) >= value(before, nf) + 1
    assert value(text, "swarmdrop_origin_bytes_served_total") > value(before, "swarmdrop_origin_bytes_served_total")


# --------------------------------------------------------------------------
# an edge in front of serve's origin
# --------------------------------------------------------------------------


def test_edge_serves_an_asset_from_serve_s_origin(swarmdrop_bin, served, pristine_published, pristine_drop, tmp_path):
    edge = start_edge(
        swarmdrop_bin, origin=served.origin, cache_dir=tmp_path / "edge-cache",
        root=pristine_published / "metadata" / "1.root.json",
    )
    try:
        for drop_path, info in signed_targets(pristine_published).items():
            path = "/" + target_file_path(pristine_published, drop_path, info).relative_to(pristine_published).as_posix()
            r = edge.get(path)
            assert r.status == 200, f"{drop_path} through the edge:\n{r}\n{edge.stderr()}"
            assert r.body == (pristine_drop / drop_path).read_bytes(), f"the edge's {drop_path} differs"
    finally:
        edge.proc.terminate()
        edge.proc.wait(timeout=10)


# --------------------------------------------------------------------------
# the tracker
# --------------------------------------------------------------------------


def test_libtorrent_downloads_from_a_seed_found_through_serve_s_tracker(swarmdrop_bin, served, bulk, tmp_path):  # noqa: F811
    # No --infohash anywhere: serve tracks the drop's own torrents.
    seed = start_seed(swarmdrop_bin, bulk, "--no-trackers", "--tracker", served.tracker_url("http"))
    try:
        got = libtorrent_download(bulk, tmp_path, [served.tracker_url("udp")], None)
    finally:
        seed.close()
    assert got.read_bytes() == bulk.data, "libtorrent's copy differs from the signed asset"


# --------------------------------------------------------------------------
# the gateway and its state file
# --------------------------------------------------------------------------


def anonymous_token(gw: Gateway) -> dict:
    body = assert_ok(gw.get("/auth/challenge"))
    solution = solve_pow(body["challenge"], body["difficulty"])
    token = assert_ok(gw.post("/auth/anonymous", {"challenge": body["challenge"], "solution": solution}))
    assert token["claims"]["tier"] == "anonymous", token
    assert token["claims"]["drop"] == DROP, token
    return token


def test_gateway_issues_an_anonymous_token(served):
    gw = served.gateway()
    token = anonymous_token(gw)
    # The challenge is single-use, and the state file says so.
    refreshed = assert_ok(gw.post("/auth/refresh", headers={"Authorization": f"Bearer {token['token']}"}))
    assert refreshed["claims"]["jti"] == token["claims"]["jti"]


def test_revocation_survives_a_restart_on_the_same_state_file(swarmdrop_bin, pristine_published, serve_config, tmp_path):
    state = tmp_path / "state.sqlite"
    first = start_serve(swarmdrop_bin, pristine_published, serve_config, state)
    try:
        gw = first.gateway()
        token = anonymous_token(gw)
        jti = token["claims"]["jti"]
        assert_ok(gw.post("/admin/revoke", {"jti": jti}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}))
        assert jti in assert_ok(gw.get("/auth/revocations"))["revoked"]
        code, _ = first.stop()
        assert code == 0, first.stderr()
    finally:
        first.close()
    second = start_serve(swarmdrop_bin, pristine_published, serve_config, state)
    try:
        gw = second.gateway()
        listed = assert_ok(gw.get("/auth/revocations"))
        assert jti in listed["revoked"], f"revocation lost across a restart: {listed}"
        assert listed["version"] >= 1
        r = gw.post("/auth/refresh", headers={"Authorization": f"Bearer {token['token']}"})
        assert_refused(r, "revoked", status=401)
    finally:
        second.close()


def test_a_private_drop_s_tracker_follows_the_gateway_beside_it(
    swarmdrop_bin, pristine_published, keydir, bulk, tmp_path,  # noqa: F811
):
    """No revocations_url given: the tracker polls serve's own gateway (on a port picked
    at start), so a revoked token stops announcing."""
    config = write_serve_config(tmp_path / "private.toml", {
        "gateway": {
            "domain": DOMAIN, "uri": URI, "drop": DROP, "signing_key": keydir / "timestamp.key",
            "allow_anonymous": True, "admin_token": ADMIN_TOKEN, "trust": {"base_difficulty": 8},
        },
        "tracker": {"private": {"drop": DROP, "gateway_keys": [keydir / "timestamp.pub"], "revocations_every": 1}},
    })
    s = start_serve(swarmdrop_bin, pristine_published, config, tmp_path / "state.sqlite")
    try:
        gw = s.gateway()
        token = anonymous_token(gw)

        def announce(tok: str | None):
            path = "/announce" + (f"/{tok}" if tok else "")
            q = "&".join(f"{k}={v}" for k, v in announce_params(bulk.ih, peer_id(1), 6881))
            return http_get(s.port("tracker-http"), f"{path}?{q}")

        assert announce(None).failure(), "a private drop's tracker took an announce without a token"
        assert announce(token["token"]).failure() is None, "a fresh token was refused"
        assert_ok(gw.post("/admin/revoke", {"jti": token["claims"]["jti"]},
                          headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}))
        assert wait_until(lambda: announce(token["token"]).failure(), 10.0, poll=0.2), (
            f"a revoked token still announces after 10 s\n{s.stderr()}"
        )
        assert "revoked" in (announce(token["token"]).failure() or "")
    finally:
        s.close()


# --------------------------------------------------------------------------
# shutdown
# --------------------------------------------------------------------------


def test_sigterm_finishes_in_flight_and_exits_zero(swarmdrop_bin, pristine_published, pristine_drop, serve_config, tmp_path):
    state = tmp_path / "state.sqlite"
    s = start_serve(swarmdrop_bin, pristine_published, serve_config, state)
    try:
        info = signed_targets(pristine_published)[BULK_DROP_PATH]
        path = "/" + target_file_path(pristine_published, BULK_DROP_PATH, info).relative_to(pristine_published).as_posix()
        want = (pristine_drop / BULK_DROP_PATH).read_bytes()
        # A small receive window (set before connecting, so it is what the handshake
        # offers) keeps most of the 4 MiB on serve's side when the signal comes.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", s.port("origin")))
        sock.sendall(build_request("GET", path, host="127.0.0.1"))
        got = sock.recv(32 * 1024)
        assert got.startswith(b"HTTP/1.1 200"), got[:200]
        # The download is in flight: stop serve, wait until it says it is draining, then
        # read the rest.
        s.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while not any("shutting down" in line for line in s.stderr_lines) and time.monotonic() < deadline:
            time.sleep(0.02)
        while chunk := sock.recv(1 << 20):
            got += chunk
        sock.close()
        body = got.split(b"\r\n\r\n", 1)[1]
        assert body == want, f"the download in flight was cut: {len(body)} of {len(want)} bytes"
        code = s.proc.wait(timeout=STOP_TIMEOUT_S)
        assert code == 0, f"serve exited {code} on SIGTERM\n{s.stderr()}"
        # New connections are refused once it is gone.
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", s.port("origin")), timeout=2)
    finally:
        s.close()
    assert "stopped" in s.stderr_lines[-1], s.stderr()
    wal = state.with_name(state.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0, "the state file was not closed cleanly (WAL left over)"


def test_idle_serve_stops_within_seconds(swarmdrop_bin, pristine_published, serve_config, tmp_path):
    s = start_serve(swarmdrop_bin, pristine_published, serve_config, tmp_path / "state.sqlite")
    try:
        # An idle keep-alive connection must not hold shutdown up.
        idle = socket.create_connection(("127.0.0.1", s.port("origin")), timeout=5)
        idle.sendall(build_request("GET", "/metadata/1.root.json", host="127.0.0.1", close=False))
        idle.recv(65536)
        code, took = s.stop()
        idle.close()
    finally:
        s.close()
    assert code == 0, s.stderr()
    assert took < 3.0, f"SIGTERM took {took:.1f}s with nothing in flight"


# --------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------


def test_print_config_documents_every_section(swarmdrop):
    text = swarmdrop.run("serve", "--print-config").stdout
    cfg = tomllib.loads(text)
    assert set(cfg) == {"serve", "origin", "qoe", "tracker", "gateway"}, sorted(cfg)
    assert {"published", "state", "drain_timeout"} <= set(cfg["serve"])
    assert {"enabled", "require_token", "max_age", "max_reports", "max_classes"} <= set(cfg["qoe"])
    assert {"http", "udp", "rate_limit", "private", "webhook"} <= set(cfg["tracker"])
    assert {"listen", "signing_key", "rate_limit", "trust"} <= set(cfg["gateway"])
    # Every field is documented (a comment line before it).
    assert text.count("\n#") > 60


def test_bad_configs_are_named_and_exit_1(swarmdrop, pristine_published, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[tracker]\nintreval = 5\n")
    r = swarmdrop.run("serve", pristine_published, "--config", bad, check=False)
    assert r.returncode == 1 and "intreval" in r.stderr and "[tracker]" in r.stderr, r.stderr
    r = swarmdrop.run("serve", pristine_published, "--state", tmp_path / "s.sqlite", check=False)
    assert r.returncode == 1 and "signing_key" in r.stderr and "listen" in r.stderr, r.stderr
    r = swarmdrop.run("serve", tmp_path, "--gateway", "", "--state", tmp_path / "s.sqlite", check=False)
    assert r.returncode == 1 and "not a published drop" in r.stderr, r.stderr
    notdb = tmp_path / "not-a-db.sqlite"
    notdb.write_bytes(b"x" * 4096)
    r = swarmdrop.run("serve", pristine_published, "--gateway", "", "--state", notdb,
                      "--origin", "127.0.0.1:0", "--tracker-http", "127.0.0.1:0", "--tracker-udp", "127.0.0.1:0",
                      check=False)
    assert r.returncode == 1 and "not-a-db.sqlite" in r.stderr, r.stderr
