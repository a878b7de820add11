"""`swarmdrop gateway` against an independent client: EIP-4361 built by hand, signed with eth-account.

One gateway per module (generous rate limits) serves most tests; a second one
(tight per-IP limits, anonymous off, everything but the limits given as flags
that override its config file) serves the flood, flag-override and
anonymous-disabled tests.

The gateway keys rate limits and risk scores on the client address, and two
failed signatures from one address already make its sign-ins ask for
proof-of-work (default ``[trust]``).  So each test talks to the main gateway
from its own loopback address (127.1.x.y, see ``fresh_source``), and requests
to the second gateway outside the flood use dedicated 127.0.0.x sources.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import tomllib
from datetime import timedelta
from pathlib import Path

import pytest
from eth_account import Account
from eth_utils import to_checksum_address

from gateway_support import (
    Gateway,
    assert_ok,
    assert_refused,
    flip_token_char,
    fresh_source,
    parse_rfc3339,
    paseto_footer,
    paseto_message,
    pow_bits,
    random_nonce,
    raw_pub_hex,
    rfc3339,
    sign,
    solve_pow,
    start_gateway,
    utcnow,
    write_config,
    wrong_pow,
)

DOMAIN = "drop.example"
URI = "https://drop.example/login"
CHAIN_ID = 1
DROP = "genesis-mint"
CLASSES = ["checkout", "keyframe", "bulk"]
LIFETIME_S = 600  # token_lifetime = "10m"
ADMIN_TOKEN = "s3cret-interop-admin"

# The tight gateway: config file says one thing, flags say another.
FLAG_DOMAIN = "flag.example"
FLAG_URI = "https://flag.example/signin"
FLAG_CHAIN_ID = 5
FLAG_DROP = "flag-drop"
CONF_DOMAIN = "config.example"

# Loopback sources used against the tight gateway (one per purpose).
SRC_FLOOD = "127.0.0.1"
SRC_SECOND = "127.0.0.2"
SRC_FLAGS = "127.0.0.4"
SRC_FLAGS_CONF_DOMAIN = "127.0.0.5"
SRC_ANON_OFF = "127.0.0.6"


# --------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def signing_key(keydir: Path) -> Path:
    return keydir / "timestamp.key"


@pytest.fixture(scope="module")
def signing_pub(keydir: Path) -> Path:
    return keydir / "timestamp.pub"


@pytest.fixture(scope="module")
def other_pub(keydir: Path) -> Path:
    """A genuine ed25519 key the main gateway does not sign with."""
    return keydir / "targets.pub"


@pytest.fixture(scope="module")
def allowlisted() -> Account:
    return Account.create()


@pytest.fixture(scope="module")
def gateway(swarmdrop_bin, signing_key, allowlisted, tmp_path_factory):
    d = tmp_path_factory.mktemp("gateway")
    allowlist = d / "allowlist.txt"
    allowlist.write_text(f"{allowlisted.address}\n")
    config = write_config(d / "gateway.toml", {
        "domain": DOMAIN,
        "uri": URI,
        "chain_id": CHAIN_ID,
        "drop": DROP,
        "signing_key": signing_key,
        "token_lifetime": "10m",
        "classes": CLASSES,
        "allow_anonymous": True,
        "allowlist": allowlist,
        "admin_token": ADMIN_TOKEN,
        "rate_limit": {
            "per_ip_per_second": 1000.0,
            "per_ip_burst": 1000,
            "per_identity_per_second": 1000.0,
            "per_identity_burst": 1000,
        },
    })
    gw = start_gateway(
        swarmdrop_bin, config, domain=DOMAIN, uri=URI, chain_id=CHAIN_ID,
        admin_token=ADMIN_TOKEN, stdout_path=d / "stdout.log",
    )
    yield gw
    gw.close()


@pytest.fixture(scope="module")
def tight_gateway(swarmdrop_bin, keydir, tmp_path_factory):
    d = tmp_path_factory.mktemp("tight-gateway")
    config = write_config(d / "gateway.toml", {
        "domain": CONF_DOMAIN,
        "uri": "https://config.example/login",
        "chain_id": 1,
        "drop": "config-drop",
        "signing_key": keydir / "timestamp.key",
        "token_lifetime": "10m",
        "classes": CLASSES,
        "allow_anonymous": False,
        "admin_token": ADMIN_TOKEN,
        "rate_limit": {
            "per_ip_per_second": 2.0,
            "per_ip_burst": 3,
            "per_identity_per_second": 100.0,
            "per_identity_burst": 100,
        },
    })
    gw = start_gateway(
        swarmdrop_bin, config,
        "--domain", FLAG_DOMAIN,
        "--uri", FLAG_URI,
        "--chain-id", str(FLAG_CHAIN_ID),
        "--drop", FLAG_DROP,
        "--signing-key", str(keydir / "targets.key"),
        domain=FLAG_DOMAIN, uri=FLAG_URI, chain_id=FLAG_CHAIN_ID,
        stdout_path=d / "stdout.log",
    )
    yield gw
    gw.close()


@pytest.fixture(autouse=True)
def _own_source_address(request):
    """Each test talks to the main gateway from its own loopback address (see fresh_source)."""
    if "gateway" in request.fixturenames:
        request.getfixturevalue("gateway").source = fresh_source()


@pytest.fixture(scope="module")
def wallet_login(gateway: Gateway) -> tuple[Account, dict]:
    """One successful wallet login shared read-only by the token tests."""
    acct = Account.create()
    return acct, gateway.token(acct)


# --------------------------------------------------------------------------
# offline verification
# --------------------------------------------------------------------------


def token_verify(swarmdrop, token: str, pub: Path, *extra) -> subprocess.CompletedProcess:
    return swarmdrop.run("token", "verify", token, "--pubkey", pub, *extra, check=False)


def verify_json(swarmdrop, token: str, pub: Path, *extra) -> dict:
    proc = token_verify(swarmdrop, token, pub, "--json", *extra)
    assert proc.returncode == 0, "token verify refused a good token\n" + swarmdrop.describe(proc)
    try:
        claims = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"--json output is not one JSON object: {exc}\n" + swarmdrop.describe(proc))
    assert isinstance(claims, dict), swarmdrop.describe(proc)
    return claims


_MISSING = "<missing>"


def assert_cli_claims_match(cli: dict, http: dict, *, with_kid: bool = False) -> None:
    """`token verify --json` prints the same claims object the gateway returned.

    Only the main admission test compares ``kid`` too (``with_kid``), so that one
    difference there is one failure, not one in every test that verifies a token.
    """
    keys = cli.keys() | http.keys()
    if not with_kid:
        keys -= {"kid"}
    diff = {
        k: {"cli": cli.get(k, _MISSING), "http": http.get(k, _MISSING)}
        for k in sorted(keys)
        if cli.get(k, _MISSING) != http.get(k, _MISSING)
    }
    assert not diff, f"`token verify --json` claims differ from the HTTP claims: {diff}"


def verify_refused(swarmdrop, token: str, pub: Path, *extra, codes: set[str]) -> str:
    """Exit 1 with one of ``codes`` on stderr; returns the code that appeared."""
    proc = token_verify(swarmdrop, token, pub, *extra)
    assert proc.returncode == 1, f"want exit 1 ({'/'.join(sorted(codes))})\n" + swarmdrop.describe(proc)
    seen = [c for c in sorted(codes) if re.search(rf"\b{c}\b", proc.stderr)]
    assert seen, f"stderr names none of {sorted(codes)}\n" + swarmdrop.describe(proc)
    return seen[0]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --------------------------------------------------------------------------
# 1. SIWE admission + offline verification
# --------------------------------------------------------------------------


def check_claims_shape(claims: dict) -> None:
    for key in ("jti", "sub", "drop", "classes", "tier", "caps", "auth_time", "iat", "exp", "nbf", "kid"):
        assert key in claims, f"claims lack {key!r}: {claims!r}"
    assert isinstance(claims["jti"], str) and claims["jti"], claims
    assert isinstance(claims["kid"], str) and claims["kid"], claims
    assert isinstance(claims["classes"], list), claims
    assert isinstance(claims["caps"], list), claims
    iat, nbf, exp = (parse_rfc3339(claims[k]) for k in ("iat", "nbf", "exp"))
    assert nbf <= iat + timedelta(seconds=1), f"nbf after iat: {claims!r}"
    assert exp > iat, f"exp not after iat: {claims!r}"
    assert parse_rfc3339(claims["auth_time"]) <= iat, f"signed in after the token was issued: {claims!r}"


def test_siwe_login_is_admitted_and_token_verifies_offline(swarmdrop, gateway, signing_pub, wallet_login):
    acct, body = wallet_login
    token, claims = body["token"], body["claims"]
    assert token.startswith("v4.public."), token
    check_claims_shape(claims)
    assert claims["sub"] == acct.address == to_checksum_address(acct.address.lower()), claims
    assert claims["drop"] == DROP, claims
    assert sorted(claims["classes"]) == sorted(CLASSES), claims
    assert claims["tier"] == "wallet", claims
    assert "mint" not in claims["caps"], f"a non-allowlisted wallet got mint: {claims!r}"
    iat, exp = parse_rfc3339(claims["iat"]), parse_rfc3339(claims["exp"])
    assert abs((exp - iat).total_seconds() - LIFETIME_S) <= 2, f"token_lifetime=10m but {claims!r}"
    assert abs((iat - utcnow()).total_seconds()) < 120, f"iat is not now: {claims!r}"
    assert parse_rfc3339(body["expires_at"]) == exp, f"expires_at != claims.exp: {body!r}"
    # The HTTP claims are what the token signs (kid lives in the PASETO footer).
    signed = paseto_message(token)
    for key, value in claims.items():
        if key == "kid":
            assert paseto_footer(token).get("kid") == value, f"footer {paseto_footer(token)} vs {claims}"
        else:
            assert signed.get(key) == value, f"HTTP claim {key}={value!r}, signed {signed.get(key)!r}"

    # Matching --drop / --class are accepted.
    verify_json(swarmdrop, token, signing_pub, "--drop", DROP, "--class", "checkout")
    assert_cli_claims_match(verify_json(swarmdrop, token, signing_pub), claims, with_kid=True)


def test_allowlisted_address_gets_mint_capability(swarmdrop, gateway, signing_pub, allowlisted):
    body = gateway.token(allowlisted)
    claims = body["claims"]
    check_claims_shape(claims)
    assert claims["sub"] == allowlisted.address, claims
    assert claims["tier"] == "allowlisted", claims
    assert claims["caps"] == ["mint"], claims
    assert_cli_claims_match(verify_json(swarmdrop, body["token"], signing_pub), claims)


@pytest.mark.parametrize("variant", ["no_statement", "expiration_and_not_before_in_window"])
def test_siwe_optional_fields_are_admitted(gateway, variant):
    acct = Account.create()
    now = utcnow()
    extra = (
        {"statement": None}
        if variant == "no_statement"
        else {"expiration": now + timedelta(minutes=5), "not_before": now - timedelta(minutes=1)}
    )
    msg = gateway.message(acct.address, gateway.nonce(), **extra)
    body = assert_ok(gateway.siwe(msg, sign(msg, acct.key)))
    assert body["claims"]["sub"] == acct.address


# --------------------------------------------------------------------------
# 2. SIWE refusals, each with its own code
# --------------------------------------------------------------------------


def _case(gw: Gateway, acct, name: str) -> tuple[str, str]:
    now = utcnow()
    if name == "unknown_nonce":
        msg = gw.message(acct.address, random_nonce())
        return msg, sign(msg, acct.key)
    nonce = gw.nonce()
    if name == "wrong_domain":
        msg = gw.message(acct.address, nonce, domain="evil.example")
    elif name == "wrong_uri":
        msg = gw.message(acct.address, nonce, uri="https://evil.example/login")
    elif name == "wrong_chain":
        msg = gw.message(acct.address, nonce, chain_id=137)
    elif name == "expired":
        # Recent enough for max_message_age, expired by more than the clock skew.
        msg = gw.message(acct.address, nonce, issued_at=now - timedelta(minutes=4),
                         expiration=now - timedelta(minutes=3))
    elif name == "not_yet_valid":
        msg = gw.message(acct.address, nonce, not_before=now + timedelta(hours=1))
    elif name == "other_key":
        msg = gw.message(acct.address, nonce)
        return msg, sign(msg, Account.create().key)
    elif name == "garbage":
        msg = f"hello gateway, please let me in {nonce}"
    elif name == "missing_nonce_line":
        msg = gw.message(acct.address, nonce, omit=["nonce"])
    else:  # pragma: no cover
        raise AssertionError(name)
    return msg, sign(msg, acct.key)


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("wrong_domain", "domain_mismatch"),
        ("wrong_uri", "uri_mismatch"),
        ("wrong_chain", "chain_mismatch"),
        ("expired", "expired"),
        ("not_yet_valid", "not_yet_valid"),
        ("unknown_nonce", "unknown_nonce"),
        ("other_key", "bad_signature"),
        ("garbage", "malformed_message"),
        ("missing_nonce_line", "malformed_message"),
    ],
)
def test_siwe_refusal(gateway, case, code):
    msg, sig = _case(gateway, Account.create(), case)
    assert_refused(gateway.siwe(msg, sig), code)


def test_siwe_nonce_reuse_is_refused(gateway):
    acct = Account.create()
    msg = gateway.message(acct.address, gateway.nonce())
    sig = sign(msg, acct.key)
    assert_ok(gateway.siwe(msg, sig))
    assert_refused(gateway.siwe(msg, sig), "nonce_reused")
    # Another wallet, from another address, cannot ride on the consumed nonce either.
    nonce = re.search(r"^Nonce: (\S+)$", msg, re.M).group(1)
    other = Account.create()
    msg2 = gateway.message(other.address, nonce)
    assert_refused(gateway.siwe(msg2, sign(msg2, other.key), source=fresh_source()), "nonce_reused")


# --------------------------------------------------------------------------
# 3. a nonce survives a failed attempt
# --------------------------------------------------------------------------


@pytest.mark.parametrize("first_failure", ["bad_signature", "domain_mismatch"])
def test_nonce_survives_failed_attempt(gateway, first_failure):
    acct = Account.create()
    nonce = gateway.nonce()
    msg = gateway.message(acct.address, nonce)
    if first_failure == "bad_signature":
        assert_refused(gateway.siwe(msg, sign(msg, Account.create().key)), "bad_signature")
    else:
        bad = gateway.message(acct.address, nonce, domain="evil.example")
        assert_refused(gateway.siwe(bad, sign(bad, acct.key)), "domain_mismatch")
    body = assert_ok(gateway.siwe(msg, sign(msg, acct.key)))
    assert body["claims"]["sub"] == acct.address


def test_failed_signatures_raise_a_solvable_challenge(gateway):
    """Beyond the brief's contract (the gateway's [trust] policy, default thresholds):
    after failed signatures from one address, its sign-in needs proof-of-work, which a
    client solves and sends with the same message; other addresses are unaffected."""
    for _ in range(2):  # 2 x 15 risk points reach the default challenge_at = 30
        msg, sig = _case(gateway, Account.create(), "other_key")
        assert_refused(gateway.siwe(msg, sig), "bad_signature")
    acct = Account.create()
    msg = gateway.message(acct.address, gateway.nonce())
    sig = sign(msg, acct.key)
    body = assert_refused(gateway.siwe(msg, sig), "challenge_required")
    ch, diff = body.get("challenge"), body.get("difficulty")
    assert isinstance(ch, str) and isinstance(diff, int) and 1 <= diff <= 32, body
    # A fresh address signs in without any challenge meanwhile.
    other = Account.create()
    assert_ok(gateway.login(other, source=fresh_source()))
    sol = solve_pow(ch, diff)
    admitted = assert_ok(gateway.post(
        "/auth/siwe", {"message": msg, "signature": sig, "challenge": ch, "solution": sol},
    ))
    assert admitted["claims"]["sub"] == acct.address


# --------------------------------------------------------------------------
# 4. token refusals (offline CLI and /auth/refresh)
# --------------------------------------------------------------------------


def test_verify_refuses_flipped_payload_char(swarmdrop, signing_pub, wallet_login):
    token = wallet_login[1]["token"]
    bad = flip_token_char(token)
    assert bad != token
    code = verify_refused(swarmdrop, bad, signing_pub, codes={"bad_signature", "malformed"})
    print(f"flipped payload char -> {code}", file=sys.stderr)


def test_verify_refuses_expired_and_not_yet_valid(swarmdrop, signing_pub, wallet_login):
    claims = wallet_login[1]["claims"]
    token = wallet_login[1]["token"]
    after = rfc3339(parse_rfc3339(claims["exp"]) + timedelta(seconds=1))
    verify_refused(swarmdrop, token, signing_pub, "--at", after, codes={"expired"})
    before = rfc3339(parse_rfc3339(claims["nbf"]) - timedelta(minutes=5))
    verify_refused(swarmdrop, token, signing_pub, "--at", before, codes={"not_yet_valid"})
    inside = rfc3339(parse_rfc3339(claims["exp"]) - timedelta(seconds=5))
    verify_json(swarmdrop, token, signing_pub, "--at", inside)


def test_tracker_pass_verifies_offline_and_is_not_a_token(swarmdrop, signing_pub, wallet_login):
    body = wallet_login[1]
    tracker_pass, claims = body["tracker_pass"], body["claims"]
    assert len("/announce/" + tracker_pass) <= 255, f"pass of {len(tracker_pass)} bytes overflows one BEP 41 option"
    proc = token_verify(swarmdrop, tracker_pass, signing_pub, "--pass", "--json", "--drop", claims["drop"])
    assert proc.returncode == 0, swarmdrop.describe(proc)
    verified = json.loads(proc.stdout)
    assert verified["jti"] == claims["jti"] and verified["exp"] == claims["exp"], (verified, claims)
    # Neither form verifies as the other.
    verify_refused(swarmdrop, tracker_pass, signing_pub, codes={"bad_signature"})
    verify_refused(swarmdrop, body["token"], signing_pub, "--pass", codes={"bad_signature"})
    verify_refused(swarmdrop, tracker_pass, signing_pub, "--pass", "--drop", "other", codes={"wrong_drop"})


def test_verify_refuses_wrong_drop(swarmdrop, signing_pub, wallet_login):
    verify_refused(swarmdrop, wallet_login[1]["token"], signing_pub, "--drop", "other", codes={"wrong_drop"})


def test_verify_refuses_class_not_granted(swarmdrop, signing_pub, wallet_login):
    verify_refused(
        swarmdrop, wallet_login[1]["token"], signing_pub, "--class", "secret",
        codes={"class_not_allowed"},
    )


def test_verify_refuses_unknown_key(swarmdrop, other_pub, wallet_login):
    code = verify_refused(
        swarmdrop, wallet_login[1]["token"], other_pub, codes={"unknown_key", "bad_signature"},
    )
    # The token's kid names a key that is not the one given: that is unknown_key.
    assert code == "unknown_key", f"verifying with a foreign key gave {code}, want unknown_key"


def test_verify_refuses_garbage_token(swarmdrop, signing_pub):
    verify_refused(swarmdrop, "v4.public.not-a-token", signing_pub, codes={"malformed"})


def test_revocation_offline_and_on_refresh(swarmdrop, gateway, signing_pub, wallet_login, tmp_path):
    victim = gateway.token(Account.create())
    jti = victim["claims"]["jti"]
    before = assert_ok(gateway.get("/auth/revocations"))
    assert isinstance(before.get("version"), int) and isinstance(before.get("revoked"), list), before

    # The admin endpoint wants the admin bearer.
    for headers in ({}, bearer("not-the-admin-token")):
        r = gateway.post("/admin/revoke", {"jti": jti}, headers=headers)
        assert 400 <= r.status < 500, f"revoke without the admin token: {r}"
    unchanged = assert_ok(gateway.get("/auth/revocations"))
    assert jti not in unchanged["revoked"], "revoked without the admin token"

    assert_ok(gateway.post("/admin/revoke", {"jti": jti}, headers=bearer(ADMIN_TOKEN)))
    after = assert_ok(gateway.get("/auth/revocations"))
    assert after["version"] > before["version"], f"version did not go up: {before} -> {after}"
    assert jti in after["revoked"], after

    revocations = tmp_path / "revocations.json"
    revocations.write_text(json.dumps(after))
    verify_refused(swarmdrop, victim["token"], signing_pub, "--revocations", revocations, codes={"revoked"})
    # Other tokens are untouched by the same list.
    verify_json(swarmdrop, wallet_login[1]["token"], signing_pub, "--revocations", revocations)

    assert_refused(gateway.post("/auth/refresh", headers=bearer(victim["token"])), "revoked", status=401)


def test_refresh_issues_new_token(swarmdrop, gateway, signing_pub):
    acct = Account.create()
    old = gateway.token(acct)
    new = assert_ok(gateway.post("/auth/refresh", headers=bearer(old["token"])))
    oc, nc = old["claims"], new["claims"]
    # Signatures are deterministic: within the same second the refreshed token is the same.
    assert isinstance(new.get("token"), str) and (new["token"] != old["token"] or nc == oc), new
    check_claims_shape(nc)
    assert nc["sub"] == oc["sub"] == acct.address, (oc, nc)
    # The session carries on: same id (what revocation names) and sign-in time.
    assert (nc["jti"], nc["auth_time"]) == (oc["jti"], oc["auth_time"]), (oc, nc)
    assert parse_rfc3339(nc["exp"]) >= parse_rfc3339(oc["exp"]), (oc, nc)
    assert_cli_claims_match(verify_json(swarmdrop, new["token"], signing_pub), nc)


def test_one_client_cannot_exhaust_the_nonce_pool(swarmdrop_bin, signing_key, tmp_path):
    config = write_config(tmp_path / "gateway.toml", {
        "domain": DOMAIN, "uri": URI, "chain_id": CHAIN_ID, "drop": DROP,
        "signing_key": signing_key, "classes": CLASSES,
        "max_pending": 1000, "max_pending_per_client": 3,
    })
    gw = start_gateway(swarmdrop_bin, config, domain=DOMAIN, uri=URI, chain_id=CHAIN_ID,
                       stdout_path=tmp_path / "stdout.log")
    try:
        hog, other = fresh_source(), fresh_source()
        for _ in range(3):
            assert_ok(gw.get("/auth/nonce", source=hog))
        assert_refused(gw.get("/auth/nonce", source=hog), "too_many_pending", status=429)
        # Everyone else still signs in.
        acct = Account.create()
        gw.source = other
        assert gw.token(acct)["claims"]["sub"] == acct.address
        m = gw.get("/metrics").body.decode()
        assert re.search(r'swarmdrop_gateway_decisions_total\{[^}]*reason="too_many_pending"[^}]*\} 1', m), m
    finally:
        gw.close()


def test_revoking_a_session_ends_its_refreshed_tokens(swarmdrop, gateway, signing_pub, tmp_path):
    first = gateway.token(Account.create())
    second = assert_ok(gateway.post("/auth/refresh", headers=bearer(first["token"])))
    third = assert_ok(gateway.post("/auth/refresh", headers=bearer(second["token"])))
    assert_ok(gateway.post("/admin/revoke", {"jti": first["claims"]["jti"]}, headers=bearer(ADMIN_TOKEN)))
    revocations = tmp_path / "revocations.json"
    revocations.write_text(json.dumps(assert_ok(gateway.get("/auth/revocations"))))
    for body in (first, second, third):
        verify_refused(swarmdrop, body["token"], signing_pub, "--revocations", revocations, codes={"revoked"})
    assert_refused(gateway.post("/auth/refresh", headers=bearer(third["token"])), "revoked", status=401)


def test_sessions_end_however_often_refreshed(swarmdrop_bin, signing_key, tmp_path):
    config = write_config(tmp_path / "gateway.toml", {
        "domain": DOMAIN, "uri": URI, "chain_id": CHAIN_ID, "drop": DROP,
        "signing_key": signing_key, "classes": CLASSES, "allow_anonymous": True,
        # The skew lets an expired token through verification for 30 s: exactly the
        # window in which only the session's end stops a refresh.
        "token_lifetime": "2s", "session_lifetime": "3s", "clock_skew": "30s",
    })
    gw = start_gateway(swarmdrop_bin, config, domain=DOMAIN, uri=URI, chain_id=CHAIN_ID,
                       stdout_path=tmp_path / "stdout.log")
    try:
        body = gw.token(Account.create())
        end = parse_rfc3339(body["claims"]["auth_time"]) + timedelta(seconds=3)
        refreshed = assert_ok(gw.post("/auth/refresh", headers=bearer(body["token"])))
        assert parse_rfc3339(refreshed["claims"]["exp"]) <= end, refreshed["claims"]
        # A deliberate wait past the session's end (not for readiness): bounded, ~2 s.
        deadline = time.monotonic() + 5.0
        while utcnow() < end and time.monotonic() < deadline:
            time.sleep(0.1)
        assert_refused(gw.post("/auth/refresh", headers=bearer(refreshed["token"])), "session_ended", status=401)
    finally:
        gw.close()


@pytest.mark.parametrize("kind", ["garbage", "flipped"])
def test_refresh_refuses_bad_tokens(gateway, wallet_login, kind):
    token = "v4.public.garbage" if kind == "garbage" else flip_token_char(wallet_login[1]["token"])
    r = gateway.post("/auth/refresh", headers=bearer(token))
    assert r.status == 401, f"want 401, got {r}"
    assert r.json().get("error") in {"malformed", "bad_signature"}, r


def test_refresh_without_token_is_refused(gateway):
    r = gateway.post("/auth/refresh")
    assert 400 <= r.status < 500, r


# --------------------------------------------------------------------------
# 5. flood: per-IP limit, another client address still served
# --------------------------------------------------------------------------


def test_rate_limit_is_per_client_address(tight_gateway):
    gw = tight_gateway
    limited = None
    statuses = []
    for _ in range(200):
        r = gw.get("/auth/nonce", source=SRC_FLOOD)
        statuses.append(r.status)
        if r.status == 429:
            limited = r
            break
        assert r.status == 200, f"unexpected answer while flooding: {r}"
    assert limited is not None, f"no 429 after {len(statuses)} requests (burst 3, 2/s)"
    # The bucket has burst 3: the 429 comes quickly but not before that.
    assert 3 <= len(statuses) - 1 <= 10, f"429 after {len(statuses) - 1} successes: {statuses}"
    # Another client address is served right away.
    assert_ok(gw.get("/auth/nonce", source=SRC_SECOND))

    assert_refused(limited, "rate_limited", status=429)
    retry_after = limited.headers.get("retry-after")
    assert retry_after is not None and re.fullmatch(r"\d+", retry_after), (
        f"Retry-After must be integer seconds, got {retry_after!r}"
    )
    retry_after = int(retry_after)
    assert 1 <= retry_after <= 5, f"Retry-After {retry_after} for a 2/s bucket"
    # Honouring Retry-After is enough to be served again.
    time.sleep(retry_after)
    assert_ok(gw.get("/auth/nonce", source=SRC_FLOOD))


# --------------------------------------------------------------------------
# flags override the config file; anonymous can be switched off
# --------------------------------------------------------------------------


def test_flags_override_config(swarmdrop, tight_gateway, keydir):
    gw = tight_gateway
    acct = Account.create()
    body = assert_ok(gw.login(acct, source=SRC_FLAGS))
    claims = body["claims"]
    assert claims["drop"] == FLAG_DROP, f"--drop did not override the config: {claims!r}"
    # --signing-key targets.key overrides signing_key = timestamp.key.
    assert_cli_claims_match(verify_json(swarmdrop, body["token"], keydir / "targets.pub"), claims)
    code = verify_refused(
        swarmdrop, body["token"], keydir / "timestamp.pub", codes={"unknown_key", "bad_signature"},
    )
    assert code == "unknown_key", f"token by an unknown key gave {code}, want unknown_key"
    # The config file's domain is no longer accepted.
    r = gw.login(Account.create(), domain=CONF_DOMAIN, uri=FLAG_URI, source=SRC_FLAGS_CONF_DOMAIN)
    assert_refused(r, "domain_mismatch")


def test_anonymous_disabled(tight_gateway):
    r = tight_gateway.post(
        "/auth/anonymous", {"challenge": "x" * 16, "solution": "0"}, source=SRC_ANON_OFF,
    )
    assert_refused(r, "anonymous_disabled", status=403)


# --------------------------------------------------------------------------
# 6. anonymous proof of work
# --------------------------------------------------------------------------


def get_challenge(gw: Gateway) -> tuple[str, int]:
    body = assert_ok(gw.get("/auth/challenge"))
    ch, diff = body.get("challenge"), body.get("difficulty")
    assert isinstance(ch, str) and ch, body
    assert isinstance(diff, int) and not isinstance(diff, bool) and 1 <= diff <= 32, body
    assert parse_rfc3339(body["expires_at"]) > utcnow(), body
    if diff > 20:
        print(f"note: anonymous difficulty {diff} > 20 makes the suite slow", file=sys.stderr)
    return ch, diff


def test_anonymous_token(swarmdrop, gateway, signing_pub):
    ch, diff = get_challenge(gateway)
    sol = solve_pow(ch, diff)
    assert pow_bits(ch, sol) >= diff
    body = assert_ok(gateway.post("/auth/anonymous", {"challenge": ch, "solution": sol}))
    claims = body["claims"]
    check_claims_shape(claims)
    assert claims["tier"] == "anonymous", claims
    assert claims["sub"].startswith("anon:") and len(claims["sub"]) > len("anon:"), claims
    assert "mint" not in claims["caps"], claims
    assert_cli_claims_match(verify_json(swarmdrop, body["token"], signing_pub), claims)

    assert_refused(gateway.post("/auth/anonymous", {"challenge": ch, "solution": sol}), "challenge_reused")


def test_anonymous_wrong_solution(gateway):
    ch, diff = get_challenge(gateway)
    bad = wrong_pow(ch, diff)
    assert_refused(gateway.post("/auth/anonymous", {"challenge": ch, "solution": bad}), "bad_solution")


# --------------------------------------------------------------------------
# 7. keys and metrics
# --------------------------------------------------------------------------


def test_keys_lists_the_signing_key(gateway, signing_pub, wallet_login):
    body = assert_ok(gateway.get("/auth/keys"))
    keys = body.get("keys")
    assert isinstance(keys, list) and keys, body
    want = raw_pub_hex(signing_pub)
    match = [k for k in keys if k.get("public_key") == want]
    assert match, f"no key with public_key {want}: {body!r}"
    k = match[0]
    assert k.get("alg") == "ed25519", k
    assert k.get("format") == "paseto.v4.public", k
    assert re.fullmatch(r"[0-9a-f]{64}", k["public_key"]), k
    assert k.get("kid") == wallet_login[1]["claims"]["kid"], f"token kid is not the listed key: {k}"


def test_metrics_count_refusal_reasons(gateway):
    # Produce each reason here so the test does not depend on test order.
    acct = Account.create()
    msg = gateway.message(acct.address, gateway.nonce())
    sig = sign(msg, acct.key)
    assert_ok(gateway.siwe(msg, sig))
    assert_refused(gateway.siwe(msg, sig), "nonce_reused")
    for case, code in (("wrong_domain", "domain_mismatch"), ("other_key", "bad_signature"),
                       ("unknown_nonce", "unknown_nonce"), ("garbage", "malformed_message")):
        gateway.source = fresh_source()  # keep each refusal off the others' risk score
        m, s = _case(gateway, Account.create(), case)
        assert_refused(gateway.siwe(m, s), code)

    r = gateway.get("/metrics")
    assert r.status == 200, r
    text = r.body.decode()
    lines = [ln for ln in text.splitlines() if ln.startswith("swarmdrop_gateway_")]
    assert lines, f"no swarmdrop_gateway_ metrics:\n{text[:2000]}"
    for reason in ("nonce_reused", "domain_mismatch", "bad_signature", "unknown_nonce", "malformed_message"):
        hits = [ln for ln in lines if reason in ln]
        assert hits, f"no swarmdrop_gateway_ line mentions {reason!r}:\n" + "\n".join(lines)
        assert any(float(ln.rsplit(None, 1)[1]) >= 1 for ln in hits), hits


# --------------------------------------------------------------------------
# 8. --print-config
# --------------------------------------------------------------------------


def test_print_config_is_toml_with_every_key(swarmdrop):
    proc = swarmdrop.run("gateway", "--print-config")
    try:
        cfg = tomllib.loads(proc.stdout)
    except tomllib.TOMLDecodeError as exc:
        raise AssertionError(f"--print-config is not TOML: {exc}\n{proc.stdout}")
    top = {"domain", "uri", "chain_id", "drop", "signing_key", "token_lifetime", "classes",
           "allow_anonymous", "allowlist", "admin_token", "rate_limit"}
    missing = top - cfg.keys()
    assert not missing, f"--print-config lacks {sorted(missing)}:\n{proc.stdout}"
    rl = cfg["rate_limit"]
    assert isinstance(rl, dict), cfg
    missing = {"per_ip_per_second", "per_ip_burst", "per_identity_per_second", "per_identity_burst"} - rl.keys()
    assert not missing, f"[rate_limit] lacks {sorted(missing)}:\n{proc.stdout}"
    assert isinstance(cfg["classes"], list) and isinstance(cfg["allow_anonymous"], bool), cfg
    assert isinstance(cfg["chain_id"], int), cfg
    assert "#" in proc.stdout, "the default config is not documented (no comments)"
