"""Helpers for the ``swarmdrop edge`` interop tests (no fixtures here).

The independent side of the edge cache:

* ``Origin``: a ``ThreadingHTTPServer`` on 127.0.0.1 serving a published directory
  (GET/HEAD, one ``bytes=`` range), counting requests per path, with switches to
  corrupt one path's body (one byte flipped, same length), delay or hold responses,
  and stop entirely (listener closed *and* open keep-alive connections cut, so the
  edge gets connection refused).
* ``raw_request``: HTTP/1.1 over a plain socket, the request bytes sent exactly as
  given (``http.client`` and urllib normalise paths; the hostile-path tests must not).
* ``Edge`` / ``start_edge``: the ``swarmdrop edge`` process, its stderr, requests.
* ``write_edge_config``: TOML checked against ``swarmdrop edge --print-config``, so a
  field the binary does not know fails the test with the list of fields it does know.
* Gateway tokens (viewer tokens by SIWE, service tokens for the admin API), libtorrent
  and aria2c webseed downloads, Prometheus text (``tracker_support``'s parser).
"""

from __future__ import annotations

import hashlib
import http.server
import json
import queue
import random
import re
import select
import shutil
import socket
import subprocess
import threading
import time
import tomllib
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import pytest

from sd_interop import base_env, latest_version, read_json

READY_RE = re.compile(r"listening edge (\S+)")
READY_TIMEOUT_S = 30.0
HTTP_TIMEOUT_S = 20.0

CACHE_HEADER = "x-swarmdrop-cache"
CACHE_STATES = {"hit-memory", "hit-disk", "miss", "coalesced", "stale"}
HITS = {"hit-memory", "hit-disk"}

SERVICE_AUTH_PREFIX = "swarmdrop-service-auth"


# --------------------------------------------------------------------------
# ports
# --------------------------------------------------------------------------


def free_port(ip: str = "127.0.0.1") -> int:
    """A free TCP port on ``ip`` *below* the kernel's ephemeral range.

    The edge of a webseed test must listen on the port the torrent names, which is
    chosen before the edge starts; an outgoing connection can take any port of the
    ephemeral range in between, so the port is picked from below it (20000-32767
    on a default Linux, whose ephemeral range starts at 32768).
    """
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    top = max(low, 10001)
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(max(1024, top - 12000), top)
        with socket.socket() as s:
            try:
                s.bind((ip, port))
            except OSError:
                continue
            return port
    raise AssertionError(f"no free port on {ip} below {top} after 200 tries")


# --------------------------------------------------------------------------
# raw HTTP/1.1 over a socket
# --------------------------------------------------------------------------


@dataclass
class RawResponse:
    """What came back for one request; ``status`` is None when the server closed
    (or reset) the connection without a status line."""

    request: bytes
    status: int | None
    reason: str = ""
    header_list: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    complete: bool = True  # the body was as long as its framing promised
    error: str | None = None  # socket error seen while sending or reading
    elapsed: float = 0.0
    extra: bytes = b""  # bytes after the response, up to EOF (only with ``drain=True``)

    @property
    def headers(self) -> dict[str, str]:
        """Lower-case names; repeated headers joined with ', '."""
        out: dict[str, str] = {}
        for k, v in self.header_list:
            k = k.lower()
            out[k] = f"{out[k]}, {v}" if k in out else v
        return out

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def cache(self) -> str | None:
        return self.header(CACHE_HEADER)

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise AssertionError(f"body is not JSON ({exc}):\n{self}") from None

    def error_code(self) -> str | None:
        try:
            body = json.loads(self.body)
        except ValueError:
            return None
        return body.get("error") if isinstance(body, dict) else None

    def sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()

    def request_line(self) -> str:
        line = self.request.split(b"\r\n", 1)[0]
        text = line[:300].decode("latin-1")
        return text + ("…" if len(line) > 300 else "")

    def __str__(self) -> str:
        req_headers = self.request.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
        shown = []
        for h in req_headers[:12]:
            t = h.decode("latin-1")
            shown.append("    " + (t[:160] + "…" if len(t) > 160 else t))
        if len(req_headers) > 12:
            shown.append(f"    … {len(req_headers) - 12} more header lines")
        resp = (
            f"  response: {self.status} {self.reason}"
            + ("" if self.complete else " (body cut short)")
            + (f" [socket: {self.error}]" if self.error else "")
        )
        hdrs = "\n".join(f"    {k}: {v}" for k, v in self.header_list)
        body = self.body[:400]
        try:
            text = body.decode("utf-8")
            is_text = text.isprintable() or all(c.isprintable() or c in "\r\n\t" for c in text)
        except UnicodeDecodeError:
            is_text = False
        body_s = repr(body) if is_text else f"<{len(self.body)} bytes, sha256 {self.sha256()[:16]}…>"
        return (
            f"  request: {self.request_line()}\n" + "\n".join(shown) + "\n" + resp + "\n" + hdrs
            + f"\n    body ({len(self.body)} bytes): {body_s}"
        )


def build_request(
    method: str,
    target: str | bytes,
    headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
    body: bytes | None = None,
    host: str = "127.0.0.1",
    close: bool = True,
) -> bytes:
    """Request bytes with ``target`` exactly as given (no normalisation)."""
    tgt = target if isinstance(target, bytes) else target.encode("latin-1")
    items = list(headers.items()) if isinstance(headers, Mapping) else list(headers or [])
    names = {k.lower() for k, _ in items}
    lines = [method.encode() + b" " + tgt + b" HTTP/1.1"]
    if "host" not in names:
        lines.append(b"Host: " + host.encode())
    for k, v in items:
        lines.append(f"{k}: {v}".encode("latin-1"))
    if close and "connection" not in names:
        lines.append(b"Connection: close")
    if body is not None and "content-length" not in names:
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")


class _Reader:
    def __init__(self, sock: socket.socket, deadline: float):
        self.sock = sock
        self.buf = b""
        self.eof = False
        self.error: str | None = None
        self.deadline = deadline

    def fill(self) -> bool:
        if self.eof:
            return False
        left = self.deadline - time.monotonic()
        if left <= 0:
            self.error = self.error or "timed out"
            self.eof = True
            return False
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(1 << 16)
        except socket.timeout:
            self.error = "timed out"
            self.eof = True
            return False
        except OSError as exc:  # reset by peer, etc.
            self.error = f"{type(exc).__name__}: {exc}"
            self.eof = True
            return False
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def until(self, sep: bytes, limit: int = 1 << 20) -> bytes | None:
        while sep not in self.buf:
            if len(self.buf) > limit or not self.fill():
                return None
        head, _, self.buf = self.buf.partition(sep)
        return head

    def exactly(self, n: int) -> tuple[bytes, bool]:
        while len(self.buf) < n:
            if not self.fill():
                break
        out, self.buf = self.buf[:n], self.buf[n:]
        return out, len(out) == n

    def rest(self) -> bytes:
        while self.fill():
            pass
        out, self.buf = self.buf, b""
        return out


def _read_response(r: _Reader, head_only: bool) -> tuple[int | None, str, list[tuple[str, str]], bytes, bool]:
    while True:
        head = r.until(b"\r\n\r\n")
        if head is None:
            return None, "", [], r.buf, False
        lines = head.split(b"\r\n")
        m = re.match(rb"HTTP/1\.[01] (\d{3})(?: (.*))?$", lines[0])
        if not m:
            return None, f"unparseable status line {lines[0][:100]!r}", [], r.buf, False
        status = int(m.group(1))
        reason = (m.group(2) or b"").decode("latin-1")
        hdrs = []
        for ln in lines[1:]:
            k, _, v = ln.partition(b":")
            hdrs.append((k.decode("latin-1").strip(), v.decode("latin-1").strip()))
        if 100 <= status < 200 and status != 101:
            continue  # interim response
        break
    h = {k.lower(): v for k, v in hdrs}
    if head_only or status in (204, 304) or 100 <= status < 200:
        return status, reason, hdrs, b"", True
    if "chunked" in h.get("transfer-encoding", "").lower():
        body = b""
        while True:
            size_line = r.until(b"\r\n")
            if size_line is None:
                return status, reason, hdrs, body, False
            try:
                size = int(size_line.split(b";")[0].strip(), 16)
            except ValueError:
                return status, reason, hdrs, body, False
            if size == 0:
                while True:  # trailer fields, then an empty line
                    line = r.until(b"\r\n")
                    if not line:
                        break
                return status, reason, hdrs, body, True
            chunk, ok = r.exactly(size)
            body += chunk
            if not ok:
                return status, reason, hdrs, body, False
            r.exactly(2)
    if "content-length" in h:
        try:
            n = int(h["content-length"])
        except ValueError:
            return status, reason, hdrs, r.rest(), False
        body, ok = r.exactly(n)
        return status, reason, hdrs, body, ok
    return status, reason, hdrs, r.rest(), True


def raw_request(
    port: int,
    data: bytes,
    *,
    head: bool | None = None,
    timeout: float = HTTP_TIMEOUT_S,
    host: str = "127.0.0.1",
    source: str | None = None,
    on_sent: Callable[[], None] | None = None,
    drain: bool = False,
) -> RawResponse:
    """Send ``data`` on a fresh connection and read one response (bounded by ``timeout``).

    ``on_sent`` is called once the request bytes are written; with ``drain`` whatever the
    server sends after the response, until it closes, lands in ``extra`` (send
    ``Connection: close``)."""
    if head is None:
        head = data.startswith(b"HEAD ")
    t0 = time.monotonic()
    deadline = t0 + timeout
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    error = None
    try:
        if source:
            sock.bind((source, 0))
        sock.settimeout(timeout)
        sock.connect((host, port))
        try:
            sock.sendall(data)
        except OSError as exc:  # the server may refuse (and close) mid-request
            error = f"while sending: {type(exc).__name__}: {exc}"
        if on_sent is not None:
            on_sent()
        r = _Reader(sock, deadline)
        status, reason, hdrs, body, complete = _read_response(r, head)
        if not complete or status is None:
            error = error or r.error
        extra = r.rest() if drain and status is not None else b""
        return RawResponse(data, status, reason, hdrs, body, complete, error, time.monotonic() - t0, extra)
    finally:
        sock.close()


# --------------------------------------------------------------------------
# the origin
# --------------------------------------------------------------------------


class _OriginHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 1024

    def __init__(self, origin: "Origin", host: str, port: int):
        self.origin = origin
        super().__init__((host, port), _OriginHandler)


class _OriginHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _OriginHTTPServer

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        pass

    def setup(self) -> None:
        super().setup()
        self.server.origin._conn_opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.origin._conn_closed(self.connection)

    def do_GET(self) -> None:  # noqa: N802
        self._serve(head=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve(head=True)

    def _serve(self, head: bool) -> None:
        origin = self.server.origin
        path = urllib.parse.urlsplit(self.path).path
        origin._record(self.command, path, self.headers.get("Range"))
        origin._wait_gate(path)
        if origin.stopped:
            self.close_connection = True
            return
        d = origin.delay_for(path)
        if d:
            time.sleep(d)
        data = origin._body(path)
        if data is None:
            body = b'{"error":"not_found"}'
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)
            return
        size = len(data)
        first, last, status = 0, size - 1, 200
        rng = self.headers.get("Range")
        m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", rng or "")
        if m and (m.group(1) or m.group(2)):
            if m.group(1) == "":
                n = int(m.group(2))
                first, last = max(0, size - n), size - 1
            else:
                first = int(m.group(1))
                last = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            if first >= size or first > last:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(last - first + 1))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.end_headers()
        if head:
            return
        view = memoryview(data)[first:last + 1]
        try:
            for i in range(0, len(view), 1 << 16):
                self.wfile.write(view[i:i + (1 << 16)])
        except OSError:
            self.close_connection = True


class Origin:
    """A published directory over HTTP on 127.0.0.1, with failure switches.

    Paths are URL paths as the edge asks for them (``/targets/frames/<sha>.f001.png``).
    """

    def __init__(self, root: Path, host: str = "127.0.0.1", port: int = 0):
        self.root = Path(root).resolve()
        self._lock = threading.Condition()
        self._log: list[tuple[float, str, str, str | None]] = []
        self._corrupt: dict[str, int | None] = {}
        self._delay: dict[str | None, float] = {}
        self._gates: dict[str, threading.Event] = {}
        self._conns: set[socket.socket] = set()
        self.stopped = False
        self.httpd = _OriginHTTPServer(self, host, port)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    # ---- address -----------------------------------------------------------

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    # ---- switches ----------------------------------------------------------

    def corrupt(self, path: str, offset: int | None = None) -> None:
        """Serve ``path`` with one byte flipped (the middle one by default)."""
        with self._lock:
            self._corrupt[path] = offset

    def uncorrupt(self, path: str) -> None:
        with self._lock:
            self._corrupt.pop(path, None)

    def set_delay(self, seconds: float, path: str | None = None) -> None:
        """Sleep ``seconds`` before answering ``path`` (every path when None)."""
        with self._lock:
            if seconds:
                self._delay[path] = seconds
            else:
                self._delay.pop(path, None)

    def delay_for(self, path: str) -> float:
        with self._lock:
            return self._delay.get(path, self._delay.get(None, 0.0))

    def hold(self, path: str) -> None:
        """Requests for ``path`` wait (without answering) until ``release(path)``."""
        with self._lock:
            self._gates[path] = threading.Event()

    def release(self, path: str) -> None:
        with self._lock:
            ev = self._gates.pop(path, None)
        if ev is not None:
            ev.set()

    def stop(self) -> None:
        """Stop entirely: no listener (connection refused) and every open connection cut."""
        if self.stopped:
            return
        self.stopped = True
        with self._lock:
            gates = list(self._gates.values())
            self._gates.clear()
        for ev in gates:
            ev.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.thread.join(timeout=10)

    close = stop

    # ---- what was asked ----------------------------------------------------

    def requests(self) -> list[tuple[str, str, str | None]]:
        """(method, path, Range) of every request so far, in order."""
        with self._lock:
            return [(m, p, r) for _t, m, p, r in self._log]

    def gets(self, path: str) -> int:
        """GET requests for ``path`` so far."""
        with self._lock:
            return sum(1 for _t, m, p, _r in self._log if m == "GET" and p == path)

    def get_counts(self) -> dict[str, int]:
        with self._lock:
            out: dict[str, int] = {}
            for _t, m, p, _r in self._log:
                if m == "GET":
                    out[p] = out.get(p, 0) + 1
            return out

    def wait_for_gets(self, path: str, n: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                if sum(1 for _t, m, p, _r in self._log if m == "GET" and p == path) >= n:
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)

    def summary(self, n: int = 30) -> str:
        reqs = self.requests()
        return "\n".join(f"    {m} {p}" + (f" Range: {r}" if r else "") for m, p, r in reqs[-n:]) or "    (none)"

    # ---- internals ---------------------------------------------------------

    def _record(self, method: str, path: str, rng: str | None) -> None:
        with self._lock:
            self._log.append((time.monotonic(), method, path, rng))
            self._lock.notify_all()

    def _wait_gate(self, path: str) -> None:
        with self._lock:
            ev = self._gates.get(path)
        if ev is not None:
            ev.wait(timeout=120)

    def _body(self, path: str) -> bytes | None:
        rel = urllib.parse.unquote(path).lstrip("/")
        p = (self.root / rel).resolve()
        if self.root not in p.parents or not p.is_file():
            return None
        data = p.read_bytes()
        with self._lock:
            if path not in self._corrupt:
                return data
            offset = self._corrupt[path]
        if not data:
            return data
        b = bytearray(data)
        b[len(b) // 2 if offset is None else offset] ^= 0x01
        return bytes(b)

    def _conn_opened(self, c: socket.socket) -> None:
        with self._lock:
            self._conns.add(c)

    def _conn_closed(self, c: socket.socket) -> None:
        with self._lock:
            self._conns.discard(c)


# --------------------------------------------------------------------------
# the published drop, as the tests see it
# --------------------------------------------------------------------------


@dataclass
class Published:
    root: Path
    drop: Path
    targets: dict[str, dict]  # drop path -> signed target info

    @classmethod
    def load(cls, root: Path, drop: Path) -> "Published":
        v = latest_version(root, "targets")
        return cls(root, drop, read_json(root / "metadata" / f"{v}.targets.json")["signed"]["targets"])

    @property
    def root_json(self) -> Path:
        return self.root / "metadata" / "1.root.json"

    def sha(self, drop_path: str) -> str:
        return self.targets[drop_path]["hashes"]["sha256"]

    def length(self, drop_path: str) -> int:
        return self.targets[drop_path]["length"]

    def cls(self, drop_path: str) -> str:
        return self.targets[drop_path]["custom"]["class"]

    def rel(self, drop_path: str) -> str:
        """``targets/<dir>/<sha256>.<name>``: pack's consistent-snapshot name."""
        p = Path(drop_path)
        parent = p.parent.as_posix()
        name = f"{self.sha(drop_path)}.{p.name}"
        return f"targets/{name}" if parent == "." else f"targets/{parent}/{name}"

    def url_path(self, drop_path: str) -> str:
        return "/" + self.rel(drop_path)

    def data(self, drop_path: str) -> bytes:
        return (self.root / self.rel(drop_path)).read_bytes()

    def of_class(self, *classes: str) -> list[str]:
        return sorted(p for p in self.targets if self.cls(p) in classes)

    def classes(self) -> list[str]:
        return sorted({self.cls(p) for p in self.targets})

    def torrent(self, drop_path: str) -> Path:
        return self.root / self.targets[drop_path]["custom"]["p2p"]["torrent"]


# --------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------


_defaults_cache: dict[str, dict] = {}


def edge_defaults(bin_path: Path) -> dict:
    """``swarmdrop edge --print-config``, parsed (it must be valid TOML)."""
    key = str(bin_path)
    if key not in _defaults_cache:
        proc = subprocess.run(
            [str(bin_path), "edge", "--print-config"], capture_output=True, text=True, timeout=30,
            stdin=subprocess.DEVNULL, env=base_env(),
        )
        if proc.returncode != 0:
            pytest.fail(
                f"`swarmdrop edge --print-config` exited {proc.returncode}\n--- stdout ---\n{proc.stdout}\n"
                f"--- stderr ---\n{proc.stderr}",
                pytrace=False,
            )
        try:
            _defaults_cache[key] = tomllib.loads(proc.stdout)
        except tomllib.TOMLDecodeError as exc:
            pytest.fail(f"`swarmdrop edge --print-config` is not valid TOML ({exc}):\n{proc.stdout}", pytrace=False)
    return _defaults_cache[key]


@dataclass(frozen=True)
class Seconds:
    """A duration, written in the form the default of its field uses."""

    s: float


@dataclass(frozen=True)
class Size:
    """A byte count, written in the form the default of its field uses."""

    n: int


def _fmt_duration(s: float) -> str:
    if s == int(s):
        return f"{int(s)}s"
    return f"{int(s * 1000)}ms"


def _coerce(value: Any, default: Any, where: str) -> Any:
    if isinstance(value, Seconds):
        if isinstance(default, str):
            return _fmt_duration(value.s)
        if isinstance(default, float):
            return float(value.s)
        if isinstance(default, int) and not isinstance(default, bool):
            assert value.s == int(value.s), f"{where} takes whole seconds; {value.s} is not"
            return int(value.s)
        raise AssertionError(f"{where}: cannot tell how to write a duration (default {default!r})")
    if isinstance(value, Size):
        if isinstance(default, str):
            return f"{value.n}B" if re.search(r"[A-Za-z]", default) else str(value.n)
        return value.n
    return value


def find_field(defaults: Mapping[str, Any], pred: Callable[[str], bool]) -> str:
    """The one dotted field name (``a`` or ``table.a``) whose name satisfies ``pred``."""
    found = []
    for k, v in defaults.items():
        if isinstance(v, Mapping):
            found += [f"{k}.{kk}" for kk in v if pred(kk)]
        elif pred(k):
            found.append(k)
    assert len(found) == 1, f"want exactly one field matching, found {found}; fields: {sorted(all_fields(defaults))}"
    return found[0]


def all_fields(defaults: Mapping[str, Any]) -> list[str]:
    out = []
    for k, v in defaults.items():
        if isinstance(v, Mapping):
            out += [f"{k}.{kk}" for kk in v]
        else:
            out.append(k)
    return out


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (str, Path)):
        return json.dumps(str(v))
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as TOML")


def write_edge_config(bin_path: Path, path: Path, fields: Mapping[str, Any]) -> Path:
    """Write an edge config; each key is ``name`` or ``table.name`` and must exist in
    ``--print-config`` (a bare name is looked up at the top level, then in the tables).
    ``Seconds``/``Size`` values are written like the field's default."""
    defaults = edge_defaults(bin_path)
    top: dict[str, Any] = {}
    tables: dict[str, dict[str, Any]] = {}
    for key, value in fields.items():
        if "." in key:
            table, name = key.split(".", 1)
            assert isinstance(defaults.get(table), Mapping) and name in defaults[table], (
                f"edge config has no field {key!r}; `swarmdrop edge --print-config` lists: {sorted(all_fields(defaults))}"
            )
            tables.setdefault(table, {})[name] = _coerce(value, defaults[table][name], key)
            continue
        if key in defaults and not isinstance(defaults[key], Mapping):
            top[key] = _coerce(value, defaults[key], key)
            continue
        homes = [t for t, v in defaults.items() if isinstance(v, Mapping) and key in v]
        assert len(homes) == 1, (
            f"edge config field {key!r} is in {len(homes)} places ({homes}); `swarmdrop edge --print-config` "
            f"lists: {sorted(all_fields(defaults))}"
        )
        tables.setdefault(homes[0], {})[key] = _coerce(value, defaults[homes[0]][key], f"{homes[0]}.{key}")
    lines = [f"{k} = {_toml(v)}" for k, v in top.items()]
    for t, kv in tables.items():
        lines += ["", f"[{t}]"] + [f"{k} = {_toml(v)}" for k, v in kv.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


# --------------------------------------------------------------------------
# the edge process
# --------------------------------------------------------------------------


@dataclass
class Edge:
    proc: subprocess.Popen
    host: str
    port: int
    argv: list[str]
    cache_dir: Path
    config: Path | None
    stderr_lines: list[str] = field(default_factory=list, repr=False)

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def stderr(self, n: int = 40) -> str:
        return "\n".join(self.stderr_lines[-n:]) or "(empty)"

    def alive(self) -> None:
        if self.proc.poll() is not None:
            pytest.fail(
                f"edge exited with {self.proc.returncode}\ncommand: {' '.join(self.argv)}\n"
                f"--- stderr ---\n{self.stderr(80)}",
                pytrace=False,
            )

    def raw(self, data: bytes, **kw) -> RawResponse:
        self.alive()
        return raw_request(self.port, data, host=self.host, **kw)

    def request(
        self,
        method: str,
        path: str | bytes,
        headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        body: bytes | None = None,
        **kw,
    ) -> RawResponse:
        return self.raw(build_request(method, path, headers, body, host=f"{self.host}:{self.port}"), **kw)

    def get(self, path: str | bytes, headers=None, **kw) -> RawResponse:
        return self.request("GET", path, headers, **kw)

    def head(self, path: str | bytes, headers=None, **kw) -> RawResponse:
        return self.request("HEAD", path, headers, **kw)

    def post_json(self, path: str, obj: Any, token: str | None = None, **kw) -> RawResponse:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.request("POST", path, headers, json.dumps(obj).encode(), **kw)

    def metrics(self) -> str:
        r = self.get("/metrics")
        assert r.status == 200, f"GET /metrics failed\n{r}\n--- edge stderr ---\n{self.stderr()}"
        return r.body.decode("utf-8", "replace")

    def why(self, r: RawResponse | None = None, origin: Origin | None = None) -> str:
        """Diagnostics for an assertion message."""
        parts = []
        if r is not None:
            parts.append(str(r))
        if origin is not None:
            parts.append("origin requests (last 30):\n" + origin.summary())
        parts.append("edge stderr (last 40 lines):\n" + self.stderr())
        return "\n".join(parts)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def start_edge(
    bin_path: Path,
    *,
    origin: str,
    cache_dir: Path,
    listen: str = "127.0.0.1:0",
    root: Path | None = None,
    config: Path | None = None,
    extra: Sequence[str] = (),
    log_path: Path | None = None,
) -> Edge:
    """Start ``swarmdrop edge`` and wait (bounded) for ``listening edge ADDR`` on stderr."""
    argv = [str(bin_path), "edge", "--origin", origin, "--cache-dir", str(cache_dir), "--listen", listen]
    if root is not None:
        argv += ["--root", str(root)]
    if config is not None:
        argv += ["--config", str(config)]
    argv += list(map(str, extra))
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env=base_env(), text=True, bufsize=1, errors="replace",
    )
    lines: list[str] = []
    ready: "queue.Queue[str | None]" = queue.Queue()
    log = open(log_path, "a") if log_path else None

    def _drain() -> None:
        assert proc.stderr is not None
        seen = False
        for line in proc.stderr:
            line = line.rstrip("\n")
            lines.append(line)
            if log:
                log.write(line + "\n")
                log.flush()
            if not seen:
                m = READY_RE.search(line)
                if m:
                    seen = True
                    ready.put(m.group(1))
        if not seen:
            ready.put(None)
        if log:
            log.close()

    threading.Thread(target=_drain, daemon=True).start()
    try:
        addr = ready.get(timeout=READY_TIMEOUT_S)
    except queue.Empty:
        addr = None
    if addr is None:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=5)
        cfg = f"--- config ---\n{config.read_text()}\n" if config is not None else ""
        pytest.fail(
            f"edge did not print 'listening edge ADDR' on stderr within {READY_TIMEOUT_S}s "
            f"(exit {proc.returncode})\ncommand: {' '.join(argv)}\n{cfg}--- stderr ---\n" + "\n".join(lines[-60:]),
            pytrace=False,
        )
    host, _, port = addr.rpartition(":")
    edge = Edge(proc, host.strip("[]"), int(port), argv, cache_dir, config, lines)
    assert edge.port > 0, f"edge announced {addr}"
    if listen.rsplit(":", 1)[1] != "0":
        assert addr == listen, f"edge was told --listen {listen} but announced {addr}\n{edge.stderr()}"
    return edge


# --------------------------------------------------------------------------
# gateway tokens
# --------------------------------------------------------------------------


def gateway_config_text(fields: Mapping[str, Any], services: Iterable[Mapping[str, Any]] = ()) -> str:
    lines = [f"{k} = {_toml(v)}" for k, v in fields.items() if not isinstance(v, Mapping)]
    for k, v in fields.items():
        if isinstance(v, Mapping):
            lines += ["", f"[{k}]"] + [f"{kk} = {_toml(vv)}" for kk, vv in v.items()]
    for s in services:
        lines += ["", "[[service]]"] + [f"{k} = {_toml(v)}" for k, v in s.items()]
    return "\n".join(lines) + "\n"


def service_signature(key_file: Path, drop: str, name: str, nonce: str) -> str:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(key_file.read_bytes(), password=None)
    return key.sign(f"{SERVICE_AUTH_PREFIX}\n{drop}\n{name}\n{nonce}".encode()).hex()


def service_token(gw, key_file: Path, drop: str, name: str) -> str:
    """A service token from ``gw`` for the ``[[service]]`` named ``name`` (key ``key_file``)."""
    from gateway_support import assert_ok

    nonce = gw.nonce()
    body = assert_ok(gw.post("/auth/service", {
        "name": name, "nonce": nonce, "signature": service_signature(key_file, drop, name, nonce),
    }))
    claims = body.get("claims", {})
    assert claims.get("tier") == "service", f"service sign-in for {name} gave {claims}"
    return body["token"]


def viewer_token(gw) -> str:
    """A wallet (SIWE) token from ``gw`` for a fresh account."""
    from eth_account import Account

    body = gw.token(Account.create())
    assert body["token"].startswith("v4.public."), body
    return body["token"]


# --------------------------------------------------------------------------
# libtorrent and aria2c, webseeds only
# --------------------------------------------------------------------------


def lt_webseed_session(ip: str):
    """A loopback, TCP-only session on ``ip`` with every discovery off, retrying webseeds
    after one second."""
    import libtorrent as lt

    from tracker_support import lt_session

    return lt_session(
        ip,
        urlseed_wait_retry=1,
        alert_mask=(
            lt.alert_category.error | lt.alert_category.status | lt.alert_category.storage
            | lt.alert_category.peer
        ),
    )


def lt_add_webseed(ses, torrent: Path, save_path: Path, url_seeds: Sequence[str] | None = None):
    """Add ``torrent`` with no trackers; its own url-list, or ``url_seeds`` instead."""
    import libtorrent as lt

    atp = lt.load_torrent_file(str(torrent))
    atp.trackers = []
    if url_seeds is not None:
        atp.url_seeds = list(url_seeds)
    atp.http_seeds = []
    atp.save_path = str(save_path)
    atp.flags &= ~lt.torrent_flags.auto_managed
    atp.flags &= ~lt.torrent_flags.paused
    atp.flags |= lt.torrent_flags.disable_dht | lt.torrent_flags.disable_lsd | lt.torrent_flags.disable_pex
    return ses.add_torrent(atp)


def lt_status_line(h) -> str:
    st = h.status()
    err = st.errc.message() if st.errc.value() else ""
    return (f"state={st.state} progress={st.progress:.3f} peers={st.num_peers} "
            f"web_seeds={len(h.url_seeds())} error={err!r}")


def run_aria2c(torrent: Path, out: Path, ip: str, timeout: float = 120.0) -> tuple[subprocess.CompletedProcess, list[str]]:
    """aria2c on ``torrent`` with no DHT, LPD or PEX, bound to ``ip``; the torrent's
    url-list is its only source (the torrent names no tracker)."""
    aria2c = shutil.which("aria2c")
    if aria2c is None:
        pytest.fail("aria2c not found: install the apt package `aria2` (.ci/run does)", pytrace=False)
    argv = [
        aria2c, f"--dir={out}",
        "--seed-time=0", "--bt-stop-timeout=90",
        "--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false", "--enable-peer-exchange=false",
        f"--interface={ip}", f"--listen-port={free_port(ip)}", "--disable-ipv6=true",
        "--summary-interval=0", "--console-log-level=notice", "--file-allocation=none",
        "--max-tries=20", "--retry-wait=1", "--connect-timeout=10", "--timeout=30",
        str(torrent),
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return proc, argv


# --------------------------------------------------------------------------
# Prometheus text
# --------------------------------------------------------------------------


def metric_names(text: str) -> list[str]:
    """Every family named in ``# TYPE`` lines, plus every sample name."""
    names = set(re.findall(r"^# TYPE (\S+)", text, re.M))
    names |= {m.group(1) for m in re.finditer(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{\s]", text, re.M)}
    return sorted(names)


def metric_lines(text: str, prefix: str) -> str:
    return "\n".join(ln for ln in text.splitlines() if prefix in ln) or f"(no line mentions {prefix})"


def metric_declared(text: str, name: str) -> bool:
    return bool(re.search(rf"^(# TYPE {re.escape(name)} |{re.escape(name)}[{{\s])", text, re.M))


# --------------------------------------------------------------------------
# events log
# --------------------------------------------------------------------------


def read_events(path: Path) -> list[Any]:
    """The events log: one JSON value per line (lines that do not parse are kept as text)."""
    if not path.exists():
        return []
    out: list[Any] = []
    for line in path.read_text(errors="replace").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            out.append(json.loads(line))
        except ValueError:
            out.append(line)
    return out


def event_mentions(ev: Any, word: str) -> bool:
    """True when any key or string value of ``ev`` (nested) contains ``word``."""
    if isinstance(ev, str):
        return word in ev
    if isinstance(ev, Mapping):
        return any(word in str(k) or event_mentions(v, word) for k, v in ev.items())
    if isinstance(ev, (list, tuple)):
        return any(event_mentions(v, word) for v in ev)
    return False


def server_sockets(port: int, ip: str = "127.0.0.1") -> tuple[int, int]:
    """(established, with unread bytes) among the server side's TCP sockets on ip:port,
    from /proc/net/tcp: once every accepted connection's receive queue is empty, the
    server has read the requests sent on them."""
    want = f"{socket.htonl(int.from_bytes(socket.inet_aton(ip), 'big')):08X}:{port:04X}"
    established = unread = 0
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return 0, 0
    for line in lines:
        f = line.split()
        if len(f) < 5 or f[1] != want or f[3] != "01":
            continue
        established += 1
        if int(f[4].split(":")[1], 16):
            unread += 1
    return established, unread


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def readable_within(sock: socket.socket, timeout: float) -> bool:
    r, _, _ = select.select([sock], [], [], timeout)
    return bool(r)


def cache_objects(cache_dir: Path) -> dict[str, Path]:
    """``DIR/objects/<sha256>`` files of an edge cache dir, by digest."""
    d = cache_dir / "objects"
    if not d.is_dir():
        return {}
    return {p.name: p for p in d.rglob("*") if p.is_file() and re.fullmatch(r"[0-9a-f]{64}", p.name)}
