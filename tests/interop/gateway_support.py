"""Helpers for the ``swarmdrop gateway`` interop tests (no fixtures here).

Independent client side of the identity gateway: EIP-4361 (Sign-In with
Ethereum) messages are built by hand from the spec's ABNF and signed with
eth-account (EIP-191 ``personal_sign``); the anonymous proof-of-work is solved
with hashlib; HTTP goes through ``http.client`` so a request can pick its
loopback *source* address (127.0.0.0/8 is all routed to ``lo`` on Linux).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import itertools
import json
import queue
import re
import secrets
import string
import subprocess
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from eth_account import Account
from eth_account.messages import encode_defunct

from sd_interop import base_env

READY_RE = re.compile(r"listening gateway 127\.0\.0\.1:(\d+)")
READY_TIMEOUT_S = 20.0
HTTP_TIMEOUT_S = 10.0

# Reason codes of the contract.
SIWE_CODES = {
    "domain_mismatch", "uri_mismatch", "chain_mismatch", "expired", "not_yet_valid",
    "unknown_nonce", "nonce_reused", "bad_signature", "malformed_message", "rate_limited",
}
TOKEN_CODES = {
    "bad_signature", "unknown_key", "expired", "not_yet_valid", "wrong_drop",
    "class_not_allowed", "revoked", "malformed",
}


# --------------------------------------------------------------------------
# time
# --------------------------------------------------------------------------


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def rfc3339(dt: datetime) -> str:
    """``2024-05-01T12:00:00Z`` (UTC, whole seconds): an RFC 3339 ``date-time``."""
    return dt.astimezone(timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


_RFC3339_RE = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})$"
)


def parse_rfc3339(s: str) -> datetime:
    """Strict RFC 3339 parse (any number of fraction digits; offset required)."""
    assert isinstance(s, str), f"expected an RFC 3339 string, got {s!r}"
    m = _RFC3339_RE.match(s)
    assert m, f"not an RFC 3339 date-time: {s!r}"
    date, hms, frac, off = m.groups()
    frac = (frac or "")[:6].ljust(6, "0")
    off = "+00:00" if off in ("Z", "z") else off
    return datetime.fromisoformat(f"{date}T{hms}.{frac}{off}").astimezone(timezone.utc)


# --------------------------------------------------------------------------
# config file
# --------------------------------------------------------------------------


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (str, Path)):
        return json.dumps(str(v))  # a JSON string is a valid TOML basic string here
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as TOML")


def write_config(path: Path, fields: Mapping[str, Any]) -> Path:
    """Write a flat TOML file; dict values become ``[tables]`` after the scalars."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in fields.items() if not isinstance(v, Mapping)]
    for k, v in fields.items():
        if isinstance(v, Mapping):
            lines += ["", f"[{k}]"] + [f"{kk} = {_toml_value(vv)}" for kk, vv in v.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


# --------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    method: str
    path: str

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise AssertionError(
                f"{self.method} {self.path} -> {self.status}: body is not JSON ({exc}): "
                f"{self.body[:500]!r}"
            ) from None

    def __str__(self) -> str:
        return f"{self.method} {self.path} -> {self.status} {self.body[:500]!r}"


def http_request(
    port: int,
    method: str,
    path: str,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    source: str | None = None,
    timeout: float = HTTP_TIMEOUT_S,
) -> Response:
    """One request on a fresh connection to 127.0.0.1:port, optionally from ``source``."""
    conn = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=timeout,
        source_address=(source, 0) if source else None,
    )
    h = {"Accept": "application/json", "Connection": "close", **(headers or {})}
    data: bytes | None
    if body is None:
        data = b"" if method in ("POST", "PUT") else None
    elif isinstance(body, (bytes, str)):
        data = body.encode() if isinstance(body, str) else body
        h.setdefault("Content-Type", "application/json")
    else:
        data = json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    try:
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        payload = r.read()
        return Response(
            status=r.status,
            headers={k.lower(): v for k, v in r.getheaders()},
            body=payload,
            method=method,
            path=path,
        )
    finally:
        conn.close()


def assert_refused(resp: Response, code: str, status: int | None = None) -> dict:
    """A 4xx (or exactly ``status``) with ``{"error": code, "detail": str}``."""
    if status is not None:
        assert resp.status == status, f"want HTTP {status} {code!r}, got {resp}"
    else:
        assert 400 <= resp.status < 500, f"want a 4xx {code!r} refusal, got {resp}"
    body = resp.json()
    assert isinstance(body, dict), f"refusal body is not an object: {resp}"
    assert body.get("error") == code, f"want error {code!r}, got {body!r} ({resp.status})"
    assert isinstance(body.get("detail"), str), f"refusal has no string detail: {body!r}"
    return body


def assert_ok(resp: Response) -> dict:
    assert resp.status == 200, f"want 200, got {resp}"
    return resp.json()


_source_counter = itertools.count()


def fresh_source() -> str:
    """A loopback address (127.1.x.y) not handed out before in this process.

    The gateway keeps per-address rate limits and risk scores (failed signatures and
    replays push an address towards proof-of-work and refusal); giving each test, and
    each deliberate misbehaviour, its own source address keeps them independent.
    """
    i = next(_source_counter)
    assert i < 250 * 250, "out of loopback source addresses"
    return f"127.1.{i // 250 + 1}.{i % 250 + 1}"


# --------------------------------------------------------------------------
# the gateway process
# --------------------------------------------------------------------------


@dataclass
class Gateway:
    proc: subprocess.Popen
    port: int
    config: Path
    domain: str
    uri: str
    chain_id: int
    stderr_lines: list[str] = field(default_factory=list, repr=False)
    admin_token: str | None = None
    # Default loopback source address of requests (None: the kernel's, 127.0.0.1).
    source: str | None = None

    def request(self, method: str, path: str, body: Any = None, **kw) -> Response:
        if kw.get("source") is None:
            kw["source"] = self.source
        if self.proc.poll() is not None:
            pytest.fail(
                f"gateway exited with {self.proc.returncode}\n--- stderr ---\n{self.stderr()}",
                pytrace=False,
            )
        return http_request(self.port, method, path, body, **kw)

    def get(self, path: str, **kw) -> Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw) -> Response:
        return self.request("POST", path, body, **kw)

    def stderr(self) -> str:
        return "\n".join(self.stderr_lines)

    # ---- flows -----------------------------------------------------------

    def nonce(self, **kw) -> str:
        body = assert_ok(self.get("/auth/nonce", **kw))
        n = body.get("nonce")
        assert isinstance(n, str) and len(n) >= 8 and n.isascii() and n.isalnum(), (
            f"nonce is not >= 8 alphanumerics: {body!r}"
        )
        return n

    def siwe(self, message: str, signature: str, **kw) -> Response:
        return self.post("/auth/siwe", {"message": message, "signature": signature}, **kw)

    def message(self, address: str, nonce: str, **overrides) -> str:
        fields = dict(domain=self.domain, uri=self.uri, chain_id=self.chain_id)
        fields.update(overrides)
        return siwe_message(address=address, nonce=nonce, **fields)

    def login(self, account, **overrides) -> Response:
        """Fetch a nonce, build + sign a message for ``account`` and POST it."""
        src = overrides.pop("source", None)
        msg = self.message(account.address, self.nonce(source=src), **overrides)
        return self.siwe(msg, sign(msg, account.key), source=src)

    def token(self, account) -> dict:
        """A successful login's body (``token``, ``expires_at``, ``claims``)."""
        body = assert_ok(self.login(account))
        assert isinstance(body.get("token"), str), f"no token in {body!r}"
        return body

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def start_gateway(
    bin_path: Path,
    config: Path,
    *extra: str,
    domain: str,
    uri: str,
    chain_id: int,
    admin_token: str | None = None,
    stdout_path: Path | None = None,
) -> Gateway:
    """Start ``swarmdrop gateway`` and wait (bounded) for its ready line on stderr."""
    argv = [str(bin_path), "gateway", "--listen", "127.0.0.1:0", "--config", str(config), *extra]
    stdout = open(stdout_path, "wb") if stdout_path else subprocess.DEVNULL
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.PIPE,
        env=base_env(),
        text=True,
        bufsize=1,
    )
    if stdout_path:
        stdout.close()  # the child holds its own descriptor
    lines: list[str] = []
    ready: "queue.Queue[int | None]" = queue.Queue()

    def _drain() -> None:
        assert proc.stderr is not None
        seen = False
        for line in proc.stderr:
            line = line.rstrip("\n")
            lines.append(line)
            if not seen:
                m = READY_RE.search(line)
                if m:
                    seen = True
                    ready.put(int(m.group(1)))
        if not seen:
            ready.put(None)

    threading.Thread(target=_drain, daemon=True).start()
    try:
        port = ready.get(timeout=READY_TIMEOUT_S)
    except queue.Empty:
        port = None
    if port is None:
        proc.kill()
        proc.wait(timeout=5)
        pytest.fail(
            f"gateway did not print 'listening gateway 127.0.0.1:PORT' on stderr within "
            f"{READY_TIMEOUT_S}s (exit {proc.returncode})\ncommand: {' '.join(argv)}\n"
            f"--- config ---\n{config.read_text()}\n--- stderr ---\n" + "\n".join(lines),
            pytrace=False,
        )
    assert port > 0, f"gateway announced port {port}"
    return Gateway(
        proc=proc, port=port, config=config, domain=domain, uri=uri, chain_id=chain_id,
        stderr_lines=lines, admin_token=admin_token,
    )


# --------------------------------------------------------------------------
# EIP-4361 / EIP-191
# --------------------------------------------------------------------------

DEFAULT_STATEMENT = "Sign in to the swarmdrop genesis mint."


def siwe_message(
    *,
    domain: str,
    address: str,
    uri: str,
    chain_id: int,
    nonce: str,
    issued_at: datetime | str | None = None,
    expiration: datetime | str | None = None,
    not_before: datetime | str | None = None,
    statement: str | None = DEFAULT_STATEMENT,
    version: str = "1",
    omit: Iterable[str] = (),
) -> str:
    """EIP-4361 text per the spec's ABNF (``omit`` drops lines by field name, to break it)."""

    def ts(v: datetime | str) -> str:
        return v if isinstance(v, str) else rfc3339(v)

    omit = set(omit)
    lines = [f"{domain} wants you to sign in with your Ethereum account:", address, ""]
    if statement is not None:
        assert "\n" not in statement
        lines += [statement]
    lines += [""]  # with no statement the ABNF gives two empty lines in a row
    body = [
        ("uri", f"URI: {uri}"),
        ("version", f"Version: {version}"),
        ("chain_id", f"Chain ID: {chain_id}"),
        ("nonce", f"Nonce: {nonce}"),
        ("issued_at", f"Issued At: {ts(issued_at if issued_at is not None else utcnow())}"),
    ]
    if expiration is not None:
        body.append(("expiration", f"Expiration Time: {ts(expiration)}"))
    if not_before is not None:
        body.append(("not_before", f"Not Before: {ts(not_before)}"))
    lines += [text for name, text in body if name not in omit]
    return "\n".join(lines)


def sign(message: str, private_key) -> str:
    """EIP-191 ``personal_sign`` of ``message``: 0x + 130 hex (r || s || v)."""
    signed = Account.sign_message(encode_defunct(text=message), private_key)
    sig = signed.signature.hex()  # hexbytes >= 1.0 drops the 0x prefix; older kept it
    if not sig.startswith("0x"):
        sig = "0x" + sig
    assert len(sig) == 2 + 130, f"unexpected signature length: {sig}"
    return sig


def random_nonce(n: int = 17) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(n))


# --------------------------------------------------------------------------
# anonymous proof of work
# --------------------------------------------------------------------------


def leading_zero_bits(digest: bytes) -> int:
    n = 0
    for b in digest:
        if b == 0:
            n += 8
            continue
        n += 8 - b.bit_length()
        break
    return n


def pow_bits(challenge: str, solution: str) -> int:
    return leading_zero_bits(hashlib.sha256(f"{challenge}:{solution}".encode()).digest())


def solve_pow(challenge: str, difficulty: int, limit: int = 1 << 26) -> str:
    for i in range(limit):
        s = str(i)
        if pow_bits(challenge, s) >= difficulty:
            return s
    raise AssertionError(f"no solution for difficulty {difficulty} in {limit} tries")


def wrong_pow(challenge: str, difficulty: int) -> str:
    """A decimal string that does NOT meet ``difficulty``."""
    assert difficulty >= 1, "difficulty 0 accepts every solution"
    for i in range(10_000_000, 10_100_000):
        s = str(i)
        if pow_bits(challenge, s) < difficulty:
            return s
    raise AssertionError("could not find a failing solution")


# --------------------------------------------------------------------------
# tokens and keys
# --------------------------------------------------------------------------


def raw_pub_hex(pub_pem: Path) -> str:
    pub = serialization.load_pem_public_key(pub_pem.read_bytes())
    assert isinstance(pub, Ed25519PublicKey), f"{pub_pem} is not ed25519"
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


_B64URL = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"


def flip_token_char(token: str, index: int = 12) -> str:
    """Change one base64url char (one bit of its 6) inside the PASETO payload part."""
    parts = token.split(".")
    assert len(parts) in (3, 4) and parts[:2] == ["v4", "public"], f"not a v4.public token: {token}"
    payload = parts[2]
    assert len(payload) > index + 1, f"payload too short: {payload}"
    c = payload[index]
    flipped = _B64URL[_B64URL.index(c) ^ 0x01]
    parts[2] = payload[:index] + flipped + payload[index + 1:]
    return ".".join(parts)


def _b64url_decode(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def paseto_message(token: str) -> dict:
    """The claims JSON inside a v4.public token (message || 64-byte signature)."""
    return json.loads(_b64url_decode(token.split(".")[2])[:-64])


def paseto_footer(token: str) -> dict:
    """The (JSON) footer of a v4.public token; ``{}`` when there is none."""
    parts = token.split(".")
    return json.loads(_b64url_decode(parts[3])) if len(parts) == 4 and parts[3] else {}

