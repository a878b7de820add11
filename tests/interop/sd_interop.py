"""Helpers shared by the swarmdrop interop tests (no fixtures here)."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import shutil
import stat
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_DIR = Path(os.environ.get("SWARMDROP_EXAMPLE_DIR", str(REPO_ROOT / "examples" / "genesis-drop")))
EXAMPLE_ASSETS = EXAMPLE_DIR / "assets"
EXAMPLE_POLICY = EXAMPLE_DIR / "drop.toml"
MAKE_BULK = EXAMPLE_DIR / "make-bulk.sh"

# Small bulk file keeps the suite fast while still spanning many pieces.
BULK_MIB = 4
BULK_DROP_PATH = "bulk/patch-1.0.bin"

# Classes of the genesis drop (see examples/genesis-drop/drop.toml).
P2P_CLASSES = {"keyframe", "bulk"}
NON_P2P_CLASSES = {"checkout"}

# Long explicit expiries so that only what a test deliberately expires can
# expire, whatever the binary's defaults are.
LONG_EXPIRIES = (
    "--expires-timestamp", "7d",
    "--expires-snapshot", "30d",
    "--expires-targets", "30d",
    "--expires-root", "365d",
)

SUBPROCESS_TIMEOUT_S = 120


# --------------------------------------------------------------------------
# running the binary
# --------------------------------------------------------------------------


def bin_path() -> Path:
    return Path(
        os.environ.get("SWARMDROP_BIN", str(REPO_ROOT / "target" / "debug" / "swarmdrop"))
    )


def base_env(source_date_epoch: int | None = None) -> dict[str, str]:
    """Environment for the binary: inherited, minus any stray SOURCE_DATE_EPOCH."""
    env = dict(os.environ)
    env.pop("SOURCE_DATE_EPOCH", None)
    env.setdefault("RUST_BACKTRACE", "1")
    if source_date_epoch is not None:
        env["SOURCE_DATE_EPOCH"] = str(int(source_date_epoch))
    return env


def _fmt_proc(argv: Sequence[str], proc: subprocess.CompletedProcess) -> str:
    return (
        f"command: {' '.join(map(str, argv))}\n"
        f"exit code: {proc.returncode}\n"
        f"--- stdout ---\n{proc.stdout}\n"
        f"--- stderr ---\n{proc.stderr}"
    )


@dataclass
class Swarmdrop:
    """Thin wrapper around the binary under test."""

    bin: Path

    def run(
        self,
        *args: str | os.PathLike,
        env: dict[str, str] | None = None,
        check: bool = True,
        timeout: float = SUBPROCESS_TIMEOUT_S,
    ) -> subprocess.CompletedProcess:
        argv = [str(self.bin), *map(str, args)]
        proc = subprocess.run(
            argv,
            env=env if env is not None else base_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if check and proc.returncode != 0:
            pytest.fail(
                "swarmdrop exited non-zero where success was expected\n"
                + _fmt_proc(argv, proc),
                pytrace=False,
            )
        return proc

    def describe(self, proc: subprocess.CompletedProcess) -> str:
        return _fmt_proc(proc.args, proc)

    def keygen(self, keydir: Path, *extra: str) -> subprocess.CompletedProcess:
        return self.run("keygen", "--out", keydir, *extra)

    def pack(
        self,
        drop_dir: Path,
        keydir: Path,
        out: Path,
        *extra: str,
        source_date_epoch: int | None = None,
        policy: Path = EXAMPLE_POLICY,
        expiries: Sequence[str] = LONG_EXPIRIES,
        check: bool = True,
    ) -> subprocess.CompletedProcess:
        if source_date_epoch is None:
            source_date_epoch = int(time.time())
        return self.run(
            "pack", drop_dir,
            "--policy", policy,
            "--keys", keydir,
            "--out", out,
            *expiries,
            *extra,
            env=base_env(source_date_epoch),
            check=check,
        )

    def verify(self, published: Path, *extra: str, check: bool = False) -> subprocess.CompletedProcess:
        return self.run("verify", published, *extra, check=check)

    def inspect_json(self, path: Path) -> dict:
        proc = self.run("inspect", path, "--json")
        try:
            return json.loads(proc.stdout)
        except json.JSONDecodeError as exc:  # pragma: no cover - diagnostic path
            pytest.fail(
                f"`swarmdrop inspect --json {path}` did not print one JSON object: {exc}\n"
                + self.describe(proc),
                pytrace=False,
            )


# --------------------------------------------------------------------------
# drop inputs and published trees
# --------------------------------------------------------------------------


def _require_example() -> None:
    missing = [p for p in (EXAMPLE_ASSETS, EXAMPLE_POLICY, MAKE_BULK) if not p.exists()]
    if missing:
        pytest.fail(
            "genesis-drop example is incomplete; missing: "
            + ", ".join(str(p) for p in missing),
            pytrace=False,
        )


def make_drop_dir(dest: Path, bulk_mib: int = BULK_MIB) -> Path:
    """Copy examples/genesis-drop/assets to ``dest`` and generate the bulk file there."""
    _require_example()
    shutil.copytree(EXAMPLE_ASSETS, dest)
    # The repo copy may be read-only in CI; the tmp copy must be writable.
    for p in [dest, *dest.rglob("*")]:
        p.chmod(p.stat().st_mode | stat.S_IWUSR)
    proc = subprocess.run(
        ["bash", str(MAKE_BULK), str(dest), str(bulk_mib)],
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, "make-bulk.sh failed\n" + _fmt_proc(proc.args, proc)
    bulk = dest / BULK_DROP_PATH
    assert bulk.is_file(), f"make-bulk.sh did not create {bulk}"
    assert bulk.stat().st_size == bulk_mib * 1024 * 1024, (
        f"{bulk} is {bulk.stat().st_size} bytes, expected {bulk_mib} MiB"
    )
    return dest


def drop_files(drop: Path) -> dict[str, Path]:
    """All regular files of a drop keyed by their drop path (posix, relative)."""
    return {
        p.relative_to(drop).as_posix(): p
        for p in sorted(drop.rglob("*"))
        if p.is_file()
    }


# --------------------------------------------------------------------------
# published repositories
# --------------------------------------------------------------------------


def read_json(path: Path) -> dict:
    with open(path, "rb") as f:
        return json.load(f)


def latest_version(published: Path, role: str) -> int:
    versions = [
        int(p.name.split(".", 1)[0])
        for p in (published / "metadata").glob(f"*.{role}.json")
        if p.name.split(".", 1)[0].isdigit()
    ]
    assert versions, f"no versioned {role} metadata in {published / 'metadata'}"
    return max(versions)


def signed_targets(published: Path) -> dict[str, dict]:
    """``signed.targets`` of the newest ``N.targets.json``."""
    v = latest_version(published, "targets")
    return read_json(published / "metadata" / f"{v}.targets.json")["signed"]["targets"]


def target_file_path(published: Path, drop_path: str, info: dict) -> Path:
    """On-disk location of a consistent-snapshot target: targets/<dir>/<sha256>.<name>."""
    sha = info["hashes"]["sha256"]
    p = Path(drop_path)
    return published / "targets" / p.parent / f"{sha}.{p.name}"


def flip_byte(path: Path, offset: int | None = None) -> int:
    """XOR one byte of ``path`` with 0x01 (middle of the file by default)."""
    data = bytearray(path.read_bytes())
    assert data, f"cannot flip a byte of empty file {path}"
    if offset is None:
        offset = len(data) // 2
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    return offset


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tiny_png(seed: int) -> bytes:
    """A valid, unique 2x2 RGBA PNG (no third-party imaging library needed)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF
        )

    w = h = 2
    px = bytes([(seed * 37) & 0xFF, (seed * 91) & 0xFF, (seed * 13) & 0xFF, 0xFF])
    raw = b"".join(b"\x00" + px * w for _ in range(h))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


# --------------------------------------------------------------------------
# loopback static HTTP server (with Range support for BEP 19 webseeds)
# --------------------------------------------------------------------------


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """SimpleHTTPRequestHandler + single-range ``Range: bytes=`` support, quiet."""

    protocol_version = "HTTP/1.1"
    server: "_StaticServer"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        pass

    def _record(self, status: int) -> None:
        with self.server.lock:
            self.server.requests.append((self.command, self.path, status, self.headers.get("Range")))

    def send_head(self):  # type: ignore[override]
        # One handler instance serves every request of a keep-alive connection.
        self._remaining = None
        path = self.translate_path(self.path)
        rng = self.headers.get("Range")
        if os.path.isdir(path) or not rng:
            f = super().send_head()
            self._record(200 if f is not None else 404)
            return f
        try:
            f = open(path, "rb")
        except OSError:
            self.send_error(404, "File not found")
            self._record(404)
            return None
        size = os.fstat(f.fileno()).st_size
        try:
            unit, _, spec = rng.partition("=")
            if unit.strip() != "bytes" or "," in spec:
                raise ValueError(rng)
            first_s, _, last_s = spec.strip().partition("-")
            if first_s == "":
                n = int(last_s)
                first, last = max(0, size - n), size - 1
            else:
                first = int(first_s)
                last = int(last_s) if last_s else size - 1
            last = min(last, size - 1)
            if first > last or first >= size:
                raise IndexError
        except IndexError:
            f.close()
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            self._record(416)
            return None
        except ValueError:
            f.close()
            self.send_error(400, "Bad Range")
            self._record(400)
            return None
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.send_header("Content-Length", str(last - first + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self._record(206)
        f.seek(first)
        self._remaining = last - first + 1
        return f

    def copyfile(self, source, outputfile) -> None:  # type: ignore[override]
        remaining = getattr(self, "_remaining", None)
        if remaining is None:
            return super().copyfile(source, outputfile)
        self._remaining = None
        while remaining > 0:
            buf = source.read(min(65536, remaining))
            if not buf:
                break
            outputfile.write(buf)
            remaining -= len(buf)


class _StaticServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path):
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str, int, str | None]] = []
        root_s = str(root)

        class Handler(_RangeHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=root_s, **kw)

        super().__init__(("127.0.0.1", 0), Handler)


@dataclass
class StaticServer:
    root: Path
    httpd: _StaticServer
    thread: threading.Thread = field(repr=False)

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        """Base URL, with trailing slash."""
        return f"http://127.0.0.1:{self.port}/"

    def requests(self) -> list[tuple[str, str, int, str | None]]:
        with self.httpd.lock:
            return list(self.httpd.requests)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


def start_static_server(root: Path) -> StaticServer:
    """Serve ``root`` on 127.0.0.1:<ephemeral>; ready as soon as it returns."""
    root.mkdir(parents=True, exist_ok=True)
    httpd = _StaticServer(root)
    t = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    return StaticServer(root=root, httpd=httpd, thread=t)

