"""Helpers for the ``swarmdrop tracker`` interop tests (no fixtures here).

Independent client side of the tracker: a tiny bencode codec, hand-built HTTP
announces/scrapes (``http.client``, so a request can pick its loopback *source*
address; 127.0.0.0/8 is all routed to ``lo`` on Linux), BEP 15 UDP packets built
with ``struct`` (plus BEP 41 URL data), a Standard Webhooks receiver, and
libtorrent sessions set up for a tracker on loopback.

libtorrent (2.1, Python wheel) on loopback, as found by experiment:

* A tracker on 127.0.0.1 and peers on 127.x work with the defaults: libtorrent
  announces its loopback listen address and connects to loopback peers a
  loopback tracker returns.  ``ssrf_mitigation`` (on by default) only requires a
  loopback HTTP tracker's path to start with ``/announce``, which
  ``/announce/<token>`` does.
* Each session listens on its own 127.0.0.x address (``listen_interfaces`` and
  ``outgoing_interfaces``): the HTTP announce is then sent *from* that address,
  so the peer list the tracker builds from the source address is right and
  the two peers are told apart by address, not just by port.  Two sessions on
  the same 127.0.0.1 also work, with ``allow_multiple_connections_per_ip``.
* ``announce_ip`` no longer exists in libtorrent 2.1's settings pack (it is
  deprecated); nothing needs it here since the source address is right.
* Torrents made by ``lt.create_torrent`` are v1+v2 hybrids by default, and
  libtorrent then announces the truncated v2 hash as well, which a tracker
  serving only ``--infohash <v1>`` refuses.  The tests use swarmdrop's own
  (v1-only) bulk torrent, with ``atp.trackers`` set to the tracker under test.
* libtorrent keeps UDP tracker connection ids in a *process-wide* cache keyed by
  the tracker's address (shared by every session and listen socket), for
  ``udp_tracker_token_expiry`` (60 s) seconds.  The tracker derives connection
  ids from the client's IP (BEP 15 anti-spoofing), so a second session on
  another 127.x address reuses the first one's id and is refused with "connection
  id unknown or expired"; libtorrent keeps the cached id and never recovers
  within a test.  ``udp_tracker_token_expiry = 0`` makes every announce connect
  afresh.
* UDP trackers: libtorrent sends the path and query of ``udp://host:port/path``
  as BEP 41 URL data, but as ONE option of at most 255 bytes: longer paths are
  cut at 255 bytes (observed: ``02 ff`` + the first 255 bytes, nothing more).
  A gateway token is ~500 characters, so libtorrent cannot carry
  ``/announce/<token>`` over UDP; the UDP private-drop tests build the packet
  themselves, splitting the URL data over several options as BEP 41 allows.
* libtorrent reports every UDP tracker error with an empty ``failure_reason``: it
  builds the message with ``std::string(packet).c_str()`` from the whole packet,
  whose first byte (action 3, big-endian) is NUL.  The tests read UDP error text
  with their own client; libtorrent's view of refusals is checked over HTTP.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import http.server
import json
import queue
import random
import re
import socket
import struct
import subprocess
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import pytest

from sd_interop import base_env

READY_HTTP_RE = re.compile(r"listening tracker-http (\S+)")
READY_UDP_RE = re.compile(r"listening tracker-udp (\S+)")
READY_TIMEOUT_S = 20.0
HTTP_TIMEOUT_S = 10.0
UDP_TIMEOUT_S = 1.0
UDP_TRIES = 3

UDP_PROTOCOL_ID = 0x41727101980
ACTION_CONNECT, ACTION_ANNOUNCE, ACTION_SCRAPE, ACTION_ERROR = 0, 1, 2, 3
UDP_EVENTS = {"none": 0, "completed": 1, "started": 2, "stopped": 3}


# --------------------------------------------------------------------------
# bencode
# --------------------------------------------------------------------------


class BencodeError(ValueError):
    pass


def bdecode(data: bytes) -> Any:
    """Strict bencode decode: ints, byte strings, lists, dicts (keys stay ``bytes``)."""
    if not isinstance(data, (bytes, bytearray)):
        raise BencodeError(f"not bytes: {type(data).__name__}")
    value, end = _bdecode_at(bytes(data), 0)
    if end != len(data):
        raise BencodeError(f"{len(data) - end} trailing bytes after the value")
    return value


def _bdecode_at(data: bytes, i: int) -> tuple[Any, int]:
    if i >= len(data):
        raise BencodeError("unexpected end of data")
    c = data[i:i + 1]
    if c == b"i":
        end = data.find(b"e", i)
        if end < 0:
            raise BencodeError("unterminated integer")
        text = data[i + 1:end]
        if not re.fullmatch(rb"0|-?[1-9][0-9]*", text):
            raise BencodeError(f"bad integer {text!r}")
        return int(text), end + 1
    if c == b"l":
        i += 1
        out = []
        while data[i:i + 1] != b"e":
            v, i = _bdecode_at(data, i)
            out.append(v)
        return out, i + 1
    if c == b"d":
        i += 1
        d: dict[bytes, Any] = {}
        last: bytes | None = None
        while data[i:i + 1] != b"e":
            k, i = _bdecode_at(data, i)
            if not isinstance(k, bytes):
                raise BencodeError(f"dict key is not a string: {k!r}")
            if last is not None and k <= last:
                raise BencodeError(f"dict keys not sorted/unique: {last!r} then {k!r}")
            last = k
            d[k], i = _bdecode_at(data, i)
        return d, i + 1
    if c.isdigit():
        colon = data.find(b":", i)
        if colon < 0:
            raise BencodeError("unterminated string length")
        text = data[i:colon]
        if not re.fullmatch(rb"0|[1-9][0-9]*", text):
            raise BencodeError(f"bad string length {text!r}")
        n = int(text)
        start = colon + 1
        if start + n > len(data):
            raise BencodeError("string runs past the end")
        return data[start:start + n], start + n
    raise BencodeError(f"unexpected byte {c!r} at {i}")


def bencode(value: Any) -> bytes:
    if isinstance(value, bool):
        raise TypeError("bencode has no booleans")
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, (bytes, bytearray)):
        return b"%d:%s" % (len(value), bytes(value))
    if isinstance(value, (list, tuple)):
        return b"l" + b"".join(bencode(v) for v in value) + b"e"
    if isinstance(value, Mapping):
        items = sorted((k.encode() if isinstance(k, str) else k, v) for k, v in value.items())
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"
    raise TypeError(f"cannot bencode {value!r}")


def compact_peers(blob: bytes) -> list[tuple[str, int]]:
    """BEP 23 compact IPv4 peers: 6 bytes each."""
    assert len(blob) % 6 == 0, f"compact peers length {len(blob)} is not a multiple of 6: {blob!r}"
    return [
        (socket.inet_ntoa(blob[i:i + 4]), struct.unpack(">H", blob[i + 4:i + 6])[0])
        for i in range(0, len(blob), 6)
    ]


def compact_peers6(blob: bytes) -> list[tuple[str, int]]:
    """BEP 7 compact IPv6 peers: 18 bytes each."""
    assert len(blob) % 18 == 0, f"compact peers6 length {len(blob)} is not a multiple of 18"
    return [
        (socket.inet_ntop(socket.AF_INET6, blob[i:i + 16]), struct.unpack(">H", blob[i + 16:i + 18])[0])
        for i in range(0, len(blob), 18)
    ]


# --------------------------------------------------------------------------
# percent-encoding
# --------------------------------------------------------------------------


def pct(data: bytes) -> str:
    """Percent-encode like most clients: RFC 3986 unreserved bytes stay raw."""
    return urllib.parse.quote_from_bytes(data, safe="")


def pct_all(data: bytes, upper: bool = False) -> str:
    """Percent-encode every byte (``%xx``; lower-case hex unless ``upper``)."""
    fmt = "%{:02X}" if upper else "%{:02x}"
    return "".join(fmt.format(b) for b in data)


def query(params: Iterable[tuple[str, str | bytes | int]]) -> str:
    """A query string; ``bytes`` values are percent-encoded with ``pct``, the rest as text."""
    parts = []
    for k, v in params:
        if isinstance(v, bytes):
            v = pct(v)
        elif isinstance(v, int):
            v = str(v)
        parts.append(f"{k}={v}")
    return "&".join(parts)


# --------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------


@dataclass
class HttpResult:
    status: int
    headers: dict[str, str]
    body: bytes
    path: str

    def bdict(self) -> dict[bytes, Any]:
        try:
            d = bdecode(self.body)
        except BencodeError as exc:
            raise AssertionError(f"GET {self.path[:200]} -> {self.status}: body is not bencode ({exc}): {self.body[:300]!r}") from None
        assert isinstance(d, dict), f"GET {self.path[:200]}: bencoded body is not a dict: {d!r}"
        return d

    def failure(self) -> str | None:
        """The ``failure reason`` (decoded), or None for a non-failure."""
        d = self.bdict()
        fr = d.get(b"failure reason")
        if fr is None:
            return None
        assert isinstance(fr, bytes), f"failure reason is not a string: {fr!r}"
        return fr.decode("utf-8", "replace")

    def __str__(self) -> str:
        return f"GET {self.path[:200]} -> {self.status} {self.body[:300]!r}"


def http_get(port: int, path: str, source: str | None = None, timeout: float = HTTP_TIMEOUT_S) -> HttpResult:
    """One GET on a fresh connection to 127.0.0.1:port, optionally from ``source``."""
    conn = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=timeout, source_address=(source, 0) if source else None
    )
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        r = conn.getresponse()
        body = r.read()
        return HttpResult(r.status, {k.lower(): v for k, v in r.getheaders()}, body, path)
    finally:
        conn.close()


def peer_id(n: int, prefix: bytes = b"-PY0001-") -> bytes:
    """A 20-byte peer id unique per ``n``."""
    return prefix + b"%012d" % n


def announce_params(
    info_hash: bytes,
    pid: bytes,
    port: int | None,
    *,
    uploaded: int | str = 0,
    downloaded: int | str = 0,
    left: int | str = 0,
    event: str | None = "started",
    numwant: int | None = 50,
    compact: int | None = 1,
    encode: Callable[[bytes], str] = pct,
) -> list[tuple[str, str]]:
    params = [("info_hash", encode(info_hash)), ("peer_id", encode(pid))]
    if port is not None:
        params.append(("port", str(port)))
    params += [("uploaded", str(uploaded)), ("downloaded", str(downloaded)), ("left", str(left))]
    if event is not None:
        params.append(("event", event))
    if numwant is not None:
        params.append(("numwant", str(numwant)))
    if compact is not None:
        params.append(("compact", str(compact)))
    return params


# --------------------------------------------------------------------------
# the tracker process
# --------------------------------------------------------------------------


def _addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


@dataclass
class Tracker:
    proc: subprocess.Popen
    http_addr: tuple[str, int]
    udp_addr: tuple[str, int]
    argv: list[str]
    stderr_lines: list[str] = field(default_factory=list, repr=False)

    @property
    def http_port(self) -> int:
        return self.http_addr[1]

    @property
    def udp_port(self) -> int:
        return self.udp_addr[1]

    def http_url(self, path: str = "/announce") -> str:
        return f"http://127.0.0.1:{self.http_port}{path}"

    def udp_url(self, path: str = "/announce") -> str:
        return f"udp://127.0.0.1:{self.udp_port}{path}"

    def stderr(self) -> str:
        return "\n".join(self.stderr_lines[-60:])

    def alive(self) -> None:
        if self.proc.poll() is not None:
            pytest.fail(
                f"tracker exited with {self.proc.returncode}\ncommand: {' '.join(self.argv)}\n"
                f"--- stderr ---\n{self.stderr()}",
                pytrace=False,
            )

    def get(self, path: str, source: str | None = None) -> HttpResult:
        self.alive()
        return http_get(self.http_port, path, source=source)

    def announce(self, info_hash: bytes, pid: bytes, port: int | None, *, path: str = "/announce",
                 source: str | None = None, extra: Sequence[tuple[str, str]] = (), **kw) -> HttpResult:
        # announce_params percent-encodes the binary fields; ``extra`` is appended as is.
        q = "&".join(f"{k}={v}" for k, v in [*announce_params(info_hash, pid, port, **kw), *extra])
        return self.get(f"{path}?{q}", source=source)

    def scrape(self, info_hashes: Sequence[bytes], *, path: str = "/scrape", source: str | None = None) -> HttpResult:
        q = "&".join(f"info_hash={pct(ih)}" for ih in info_hashes)
        return self.get(f"{path}?{q}" if q else path, source=source)

    def scrape_counts(self, info_hash: bytes, path: str = "/scrape") -> dict[str, int] | None:
        """``complete``/``incomplete``/``downloaded`` for one hash, None when absent."""
        r = self.scrape([info_hash], path=path)
        assert r.status == 200, str(r)
        d = r.bdict()
        assert b"failure reason" not in d, f"scrape refused: {d!r}"
        files = d.get(b"files")
        assert isinstance(files, dict), f"scrape has no files dict: {d!r}"
        entry = files.get(info_hash)
        if entry is None:
            return None
        return {k.decode(): v for k, v in entry.items()}

    def metrics(self) -> str:
        r = self.get("/metrics")
        assert r.status == 200, str(r)
        return r.body.decode("utf-8", "replace")

    def udp(self, source: str = "127.0.0.1") -> "UdpClient":
        self.alive()
        return UdpClient(self.udp_addr, source=source)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def start_tracker(bin_path: Path, *args: str, config: Path | None = None) -> Tracker:
    """Start ``swarmdrop tracker`` on ephemeral loopback ports; wait (bounded) for both ready lines."""
    argv = [str(bin_path), "tracker", "--http", "127.0.0.1:0", "--udp", "127.0.0.1:0", *map(str, args)]
    if config is not None:
        argv += ["--config", str(config)]
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env=base_env(), text=True, bufsize=1,
    )
    lines: list[str] = []
    ready: "queue.Queue[tuple[str, str] | None]" = queue.Queue()

    def _drain() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            line = line.rstrip("\n")
            lines.append(line)
            for kind, rx in (("http", READY_HTTP_RE), ("udp", READY_UDP_RE)):
                m = rx.search(line)
                if m:
                    ready.put((kind, m.group(1)))
        ready.put(None)

    threading.Thread(target=_drain, daemon=True).start()
    found: dict[str, str] = {}
    deadline = time.monotonic() + READY_TIMEOUT_S
    while len(found) < 2:
        try:
            item = ready.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            item = None
        if item is None:
            break
        found[item[0]] = item[1]
    if len(found) < 2:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=5)
        cfg = f"--- config ---\n{config.read_text()}\n" if config is not None else ""
        pytest.fail(
            f"tracker did not print both 'listening tracker-http ADDR' and 'listening tracker-udp ADDR' "
            f"on stderr within {READY_TIMEOUT_S}s (got {found}, exit {proc.returncode})\n"
            f"command: {' '.join(argv)}\n{cfg}--- stderr ---\n" + "\n".join(lines[-60:]),
            pytrace=False,
        )
    http_addr, udp_addr = _addr(found["http"]), _addr(found["udp"])
    assert http_addr[1] > 0 and udp_addr[1] > 0, f"tracker announced port 0: {found}"
    return Tracker(proc=proc, http_addr=http_addr, udp_addr=udp_addr, argv=argv, stderr_lines=lines)


def write_tracker_config(path: Path, fields: Mapping[str, Any]) -> Path:
    """Flat TOML: scalars/arrays first, then one ``[table]`` per dict value."""

    def val(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, (str, Path)):
            return json.dumps(str(v))
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(val(x) for x in v) + "]"
        raise TypeError(f"cannot write {v!r} as TOML")

    lines = [f"{k} = {val(v)}" for k, v in fields.items() if not isinstance(v, Mapping)]
    for k, v in fields.items():
        if isinstance(v, Mapping):
            lines += ["", f"[{k}]"] + [f"{kk} = {val(vv)}" for kk, vv in v.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


# --------------------------------------------------------------------------
# Prometheus text
# --------------------------------------------------------------------------

_METRIC_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def metric_samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """Every sample of metric ``name``: (labels, value)."""
    out = []
    for line in text.splitlines():
        m = _METRIC_RE.match(line)
        if not m or m.group(1) != name:
            continue
        labels = dict(_LABEL_RE.findall(m.group(2) or ""))
        out.append((labels, float(m.group(3))))
    return out


def metric_sum(text: str, name: str, **want: str | Callable[[str], bool]) -> float:
    """Sum of the samples of ``name`` whose labels match ``want`` (value or predicate)."""
    total = 0.0
    for labels, value in metric_samples(text, name):
        ok = True
        for k, w in want.items():
            v = labels.get(k)
            if v is None or (w(v) if callable(w) else v != w):
                ok = False
                break
        if ok:
            total += value
    return total


# --------------------------------------------------------------------------
# UDP (BEP 15, BEP 41)
# --------------------------------------------------------------------------


@dataclass
class UdpReply:
    action: int
    tid: int
    payload: bytes  # everything after action + transaction id

    @property
    def error(self) -> str | None:
        return self.payload.decode("utf-8", "replace") if self.action == ACTION_ERROR else None

    def __str__(self) -> str:
        return f"UDP reply action={self.action} tid={self.tid:#x} payload={self.payload[:120]!r}"


def url_data_options(path_and_query: str | bytes, chunk: int = 255) -> bytes:
    """BEP 41 options: URLData (type 2) in chunks of <= 255 bytes, then EndOfOptions."""
    data = path_and_query.encode() if isinstance(path_and_query, str) else path_and_query
    out = b""
    for i in range(0, len(data), chunk):
        part = data[i:i + chunk]
        out += bytes([2, len(part)]) + part
    return out + b"\x00"


def udp_announce_packet(
    conn_id: int, tid: int, info_hash: bytes, pid: bytes, port: int, *,
    downloaded: int = 0, left: int = 0, uploaded: int = 0, event: str = "started",
    ip: int = 0, key: int = 0, num_want: int = -1, url_data: str | bytes | None = None,
) -> bytes:
    pkt = struct.pack(
        ">QII20s20sQQQIIIiH",
        conn_id, ACTION_ANNOUNCE, tid, info_hash, pid,
        downloaded, left, uploaded, UDP_EVENTS[event], ip, key, num_want, port,
    )
    assert len(pkt) == 98
    if url_data is not None:
        pkt += url_data_options(url_data)
    return pkt


class UdpClient:
    """A BEP 15 client on its own socket bound to ``source`` (a 127.x address)."""

    def __init__(self, addr: tuple[str, int], source: str = "127.0.0.1", timeout: float = UDP_TIMEOUT_S):
        self.addr = addr
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind((source, 0))
        self.sock.settimeout(timeout)
        self.timeout = timeout

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "UdpClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @staticmethod
    def tid() -> int:
        return random.getrandbits(32)

    def send(self, pkt: bytes) -> None:
        self.sock.sendto(pkt, self.addr)

    def recv(self, tid: int | None = None, timeout: float | None = None) -> UdpReply | None:
        """The next reply (with transaction id ``tid`` if given), or None on timeout."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data, src = self.sock.recvfrom(65536)
            except socket.timeout:
                return None
            assert src == self.addr, f"UDP reply from {src}, not the tracker {self.addr}"
            assert len(data) >= 8, f"UDP reply shorter than 8 bytes: {data!r}"
            action, rtid = struct.unpack(">II", data[:8])
            if tid is None or rtid == tid:
                return UdpReply(action, rtid, data[8:])

    def request(self, pkt_for_tid: Callable[[int], bytes], tries: int = UDP_TRIES) -> UdpReply:
        for _ in range(tries):
            tid = self.tid()
            self.send(pkt_for_tid(tid))
            reply = self.recv(tid)
            if reply is not None:
                return reply
        raise AssertionError(f"no UDP reply from the tracker at {self.addr} after {tries} tries")

    def connect(self) -> int:
        r = self.request(lambda tid: struct.pack(">QII", UDP_PROTOCOL_ID, ACTION_CONNECT, tid))
        assert r.action == ACTION_CONNECT, f"connect: {r}"
        assert len(r.payload) == 8, f"connect reply is not 16 bytes: {r}"
        return struct.unpack(">Q", r.payload)[0]

    def announce_raw(self, conn_id: int, info_hash: bytes, pid: bytes, port: int, **kw) -> UdpReply:
        return self.request(lambda tid: udp_announce_packet(conn_id, tid, info_hash, pid, port, **kw))

    def announce(self, conn_id: int, info_hash: bytes, pid: bytes, port: int, **kw) -> dict:
        """A successful announce: interval, leechers, seeders, peers; fails on an error packet."""
        r = self.announce_raw(conn_id, info_hash, pid, port, **kw)
        assert r.action == ACTION_ANNOUNCE, f"announce refused: {r}"
        return parse_udp_announce(r)

    def scrape_raw(self, conn_id: int, info_hashes: Sequence[bytes]) -> UdpReply:
        return self.request(
            lambda tid: struct.pack(">QII", conn_id, ACTION_SCRAPE, tid) + b"".join(info_hashes)
        )

    def scrape(self, conn_id: int, info_hashes: Sequence[bytes]) -> list[dict[str, int]]:
        r = self.scrape_raw(conn_id, info_hashes)
        assert r.action == ACTION_SCRAPE, f"scrape refused: {r}"
        assert len(r.payload) == 12 * len(info_hashes), f"scrape reply of {len(r.payload)} bytes for {len(info_hashes)} hashes"
        return [
            dict(zip(("seeders", "completed", "leechers"), struct.unpack(">iii", r.payload[i:i + 12])))
            for i in range(0, len(r.payload), 12)
        ]


def parse_udp_announce(r: UdpReply) -> dict:
    assert len(r.payload) >= 12 and (len(r.payload) - 12) % 6 == 0, f"bad announce reply length: {r}"
    interval, leechers, seeders = struct.unpack(">iii", r.payload[:12])
    return {"interval": interval, "leechers": leechers, "seeders": seeders, "peers": compact_peers(r.payload[12:])}


# --------------------------------------------------------------------------
# webhook receiver (Standard Webhooks)
# --------------------------------------------------------------------------


@dataclass
class WebhookDelivery:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _WebhookServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.deliveries: "list[WebhookDelivery]" = []
        self.cond = threading.Condition()
        super().__init__(("127.0.0.1", 0), _WebhookHandler)


class _WebhookHandler(http.server.BaseHTTPRequestHandler):
    server: _WebhookServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args) -> None:  # noqa: A002
        pass

    def do_POST(self) -> None:  # noqa: N802
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n)
        d = WebhookDelivery(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        with self.server.cond:
            self.server.deliveries.append(d)
            self.server.cond.notify_all()
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()


class WebhookReceiver:
    def __init__(self) -> None:
        self.httpd = _WebhookServer()
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def url(self, path: str = "/hooks/tracker") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def deliveries(self) -> list[WebhookDelivery]:
        with self.httpd.cond:
            return list(self.httpd.deliveries)

    def wait_for(self, pred: Callable[[dict], bool], timeout: float = 10.0) -> WebhookDelivery | None:
        """The first delivery whose JSON body satisfies ``pred`` (bounded wait)."""
        deadline = time.monotonic() + timeout
        with self.httpd.cond:
            while True:
                for d in self.httpd.deliveries:
                    try:
                        ev = d.json()
                    except ValueError:
                        continue
                    if isinstance(ev, dict) and pred(ev):
                        return d
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.httpd.cond.wait(left)

    def summary(self) -> str:
        return "\n".join(f"  {d.path} {d.body[:300]!r}" for d in self.deliveries()[-20:]) or "  (none)"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


def webhook_signature(secret: bytes, msg_id: str, timestamp: str, body: bytes) -> str:
    """Standard Webhooks ``v1`` signature: base64(HMAC-SHA256(secret, id.timestamp.body))."""
    mac = hmac.new(secret, msg_id.encode() + b"." + timestamp.encode() + b"." + body, hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def verify_webhook(d: WebhookDelivery, secret: bytes, max_age_s: float = 300.0) -> None:
    """Headers present, timestamp fresh, one ``v1,<sig>`` entry matching the HMAC."""
    for h in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        assert d.headers.get(h), f"webhook delivery lacks header {h!r}: {d.headers}"
    ts = d.headers["webhook-timestamp"]
    assert re.fullmatch(r"\d+", ts), f"webhook-timestamp is not unix seconds: {ts!r}"
    assert abs(int(ts) - time.time()) <= max_age_s, f"webhook-timestamp {ts} is not now ({int(time.time())})"
    want = webhook_signature(secret, d.headers["webhook-id"], ts, d.body)
    sigs = d.headers["webhook-signature"].split()
    assert any(s == f"v1,{want}" for s in sigs), (
        f"no webhook-signature entry matches v1,{want}\n  header: {d.headers['webhook-signature']!r}\n"
        f"  id={d.headers['webhook-id']!r} ts={ts!r} body={d.body[:300]!r}"
    )


# --------------------------------------------------------------------------
# libtorrent
# --------------------------------------------------------------------------


def lt_session(ip: str, **overrides: Any):
    """A TCP-only session listening on ``ip`` (127.x) with every other discovery off;
    ``overrides`` replace or add settings."""
    import libtorrent as lt

    return lt.session({
        "listen_interfaces": f"{ip}:0",
        "outgoing_interfaces": ip,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "webtorrent_stun_server": "",
        "announce_to_all_trackers": True,
        "allow_multiple_connections_per_ip": True,
        # libtorrent caches UDP tracker connection ids process-wide per tracker address;
        # the tracker binds ids to the client address, so sessions on other 127.x
        # addresses must not reuse one another's id (see the module docstring).
        "udp_tracker_token_expiry": 0,
        "stop_tracker_timeout": 1,
        "alert_mask": (
            lt.alert_category.error | lt.alert_category.status | lt.alert_category.tracker
            | lt.alert_category.storage | lt.alert_category.connect
        ),
    } | overrides)


def lt_add(ses, torrent: Path, save_path: Path, trackers: Sequence[str]):
    """Add ``torrent`` announcing only to ``trackers``: no webseeds, DHT, LSD or PEX."""
    import libtorrent as lt

    atp = lt.load_torrent_file(str(torrent))
    atp.trackers = list(trackers)
    atp.url_seeds = []
    atp.http_seeds = []
    atp.save_path = str(save_path)
    atp.flags &= ~lt.torrent_flags.auto_managed
    atp.flags &= ~lt.torrent_flags.paused
    atp.flags |= lt.torrent_flags.disable_dht | lt.torrent_flags.disable_lsd | lt.torrent_flags.disable_pex
    return ses.add_torrent(atp)


@dataclass
class AlertRec:
    """A copy of what matters in one alert: libtorrent alerts die at the next ``pop_alerts``."""

    session: str
    kind: type
    message: str
    num_peers: int | None = None  # tracker_reply_alert
    failure_reason: str | None = None  # tracker_error_alert
    endpoint: tuple[str, int] | None = None  # peer alerts


def _copy_alert(session: str, a) -> AlertRec:
    import libtorrent as lt

    rec = AlertRec(session, type(a), a.message())
    if isinstance(a, lt.tracker_reply_alert):
        rec.num_peers = a.num_peers
    if isinstance(a, lt.tracker_error_alert):
        rec.failure_reason = a.failure_reason()
    if isinstance(a, lt.peer_alert):
        ep = a.endpoint
        rec.endpoint = (str(ep[0]), int(ep[1]))
    return rec


@dataclass
class AlertLog:
    """Alerts popped from a set of sessions, copied (see ``AlertRec``) and tagged with the session's name."""

    sessions: dict[str, Any]
    alerts: list[AlertRec] = field(default_factory=list)

    def pump(self) -> list[AlertRec]:
        new = [_copy_alert(name, a) for name, ses in self.sessions.items() for a in ses.pop_alerts()]
        self.alerts += new
        return new

    def of(self, name: str, kind) -> list[AlertRec]:
        return [a for a in self.alerts if a.session == name and issubclass(a.kind, kind)]

    def summary(self, n: int = 40) -> str:
        import libtorrent as lt

        skip = (lt.block_finished_alert, lt.piece_finished_alert)
        rows = [f"  [{a.session}] {a.kind.__name__}: {a.message}" for a in self.alerts if not issubclass(a.kind, skip)]
        return "\n".join(rows[-n:]) or "  (none)"


def wait_until(cond: Callable[[], Any], timeout: float, poll: float = 0.1, on_poll: Callable[[], Any] | None = None) -> Any:
    """Poll ``cond`` until truthy (returned) or ``timeout`` seconds pass (returns the last value)."""
    deadline = time.monotonic() + timeout
    while True:
        if on_poll is not None:
            on_poll()
        v = cond()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(poll)
