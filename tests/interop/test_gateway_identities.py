"""Service identities and signing-key rotation at the gateway, end to end.

Edges and seeders sign in with the ed25519 keys listed in the gateway config; a gateway
whose signing key rotated still refreshes tokens made with the previous key, and offline
verifiers accept both keys while /auth/keys lists both.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from eth_account import Account

from gateway_support import assert_ok, assert_refused, paseto_footer, start_gateway, write_config

DOMAIN = "identities.example"
URI = "https://identities.example/login"
DROP = "genesis-mint"


def service_signature(key_file: Path, name: str, nonce: str) -> str:
    key = load_pem_private_key(key_file.read_bytes(), password=None)
    return key.sign(f"swarmdrop-service-auth\n{DROP}\n{name}\n{nonce}".encode()).hex()


def config(path: Path, signing_key: Path, **extra) -> Path:
    fields = {"domain": DOMAIN, "uri": URI, "drop": DROP, "signing_key": signing_key, **extra}
    return write_config(path, fields)


def token_verify(swarmdrop_bin: Path, token: str, *pubkeys: Path) -> subprocess.CompletedProcess:
    args = [str(swarmdrop_bin), "token", "verify", token, "--json", "--drop", DROP]
    for pub in pubkeys:
        args += ["--pubkey", str(pub)]
    return subprocess.run(args, capture_output=True, text=True, timeout=30)


@pytest.fixture(scope="module")
def service_gateway(swarmdrop_bin, keydir, tmp_path_factory):
    d = tmp_path_factory.mktemp("service-gateway")
    path = config(d / "gateway.toml", keydir / "timestamp.key")
    with path.open("a") as f:
        f.write(f'\n[[service]]\nname = "edge-fra-1"\npublic_key = "{keydir / "snapshot.pub"}"\ncaps = ["edge"]\n')
    gw = start_gateway(swarmdrop_bin, path, domain=DOMAIN, uri=URI, chain_id=1)
    yield gw
    gw.close()


def test_a_listed_service_gets_a_service_token(service_gateway, keydir, swarmdrop_bin):
    nonce = service_gateway.nonce()
    body = assert_ok(service_gateway.post("/auth/service", {
        "name": "edge-fra-1", "nonce": nonce, "signature": service_signature(keydir / "snapshot.key", "edge-fra-1", nonce),
    }))
    claims = body["claims"]
    assert (claims["sub"], claims["tier"], claims["caps"]) == ("service:edge-fra-1", "service", ["edge"]), claims
    verified = token_verify(swarmdrop_bin, body["token"], keydir / "timestamp.pub")
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["sub"] == "service:edge-fra-1"
    # The nonce is single-use.
    again = service_gateway.post("/auth/service", {
        "name": "edge-fra-1", "nonce": nonce, "signature": service_signature(keydir / "snapshot.key", "edge-fra-1", nonce),
    })
    assert_refused(again, "unknown_nonce")


def test_services_are_refused_with_the_wrong_key_or_name(service_gateway, keydir):
    nonce = service_gateway.nonce()
    wrong_key = service_gateway.post("/auth/service", {
        "name": "edge-fra-1", "nonce": nonce, "signature": service_signature(keydir / "targets.key", "edge-fra-1", nonce),
    })
    assert_refused(wrong_key, "bad_signature")
    unknown = service_gateway.post("/auth/service", {
        "name": "edge-nowhere", "nonce": nonce, "signature": service_signature(keydir / "snapshot.key", "edge-nowhere", nonce),
    })
    assert_refused(unknown, "unknown_service")
    # The failed attempts did not burn the nonce.
    ok = service_gateway.post("/auth/service", {
        "name": "edge-fra-1", "nonce": nonce, "signature": service_signature(keydir / "snapshot.key", "edge-fra-1", nonce),
    })
    assert_ok(ok)


def test_a_rotated_gateway_refreshes_tokens_of_the_previous_key(swarmdrop_bin, keydir, tmp_path):
    old = start_gateway(swarmdrop_bin, config(tmp_path / "old.toml", keydir / "timestamp.key"), domain=DOMAIN, uri=URI, chain_id=1)
    try:
        old_token = old.token(Account.create())["token"]
    finally:
        old.close()
    rotated_config = config(tmp_path / "new.toml", keydir / "targets.key", previous_keys=[keydir / "timestamp.pub"])
    new = start_gateway(swarmdrop_bin, rotated_config, domain=DOMAIN, uri=URI, chain_id=1)
    try:
        keys = assert_ok(new.get("/auth/keys"))["keys"]
        assert len(keys) == 2, keys
        refreshed = assert_ok(new.post("/auth/refresh", headers={"Authorization": f"Bearer {old_token}"}))
        assert paseto_footer(refreshed["token"])["kid"] == keys[0]["kid"] != paseto_footer(old_token)["kid"]
        # Offline verifiers that know both keys accept both tokens; with only the new key, the old is unknown.
        for token in (old_token, refreshed["token"]):
            result = token_verify(swarmdrop_bin, token, keydir / "targets.pub", keydir / "timestamp.pub")
            assert result.returncode == 0, result.stderr
        only_new = token_verify(swarmdrop_bin, old_token, keydir / "targets.pub")
        assert only_new.returncode == 1 and "unknown_key" in only_new.stderr, only_new.stderr
    finally:
        new.close()
