"""Wallet sign-in and quality reports: ``swarmdrop get`` against a real ``swarmdrop serve``.

- ``get --gateway G --anonymous`` fetches the drop, then POSTs its quality report to
  ``G/qoe``; ``/qoe/summary`` and the gateway's ``/metrics`` reflect it (per class:
  assets, within-budget share, percentiles; bytes by path kind); ``--no-qoe`` sends none;
- ``get --wallet KEYFILE`` signs in with SIWE (EIP-4361) using a key that eth-account
  generated (an independent signer); the report is stored under eth-account's address;
- a malformed key file fails with a clear error naming the file, without its content;
- ``swarmdrop wallet new`` writes a 0600 key file eth-account reads to the same address;
- ``POST /qoe`` refuses a report without a token, and malformed reports with a 400 that
  names the field.
"""

from __future__ import annotations

import sqlite3
import stat
import subprocess
from pathlib import Path

import pytest
from eth_account import Account

from edge_support import Published
from gateway_support import assert_refused, http_request
from test_serve import Serve, anonymous_token, serve_config, start_serve  # noqa: F401  (fixture)

RUN_TIMEOUT_S = 120.0


@pytest.fixture(scope="module")
def pub(pristine_published, pristine_drop) -> Published:
    return Published.load(pristine_published, pristine_drop)


@pytest.fixture
def serve(swarmdrop_bin, pub, serve_config, tmp_path):
    s = start_serve(swarmdrop_bin, pub.root, serve_config, tmp_path / "state.sqlite")
    yield s
    s.close()


def gateway_url(serve: Serve) -> str:
    return f"http://127.0.0.1:{serve.port('gateway')}/"


def get(swarmdrop_bin: Path, serve: Serve, pub: Published, out: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(swarmdrop_bin), "get", serve.origin, "--out", str(out), "--json", "--paths", "origin",
         "--root", str(pub.root_json), "--gateway", gateway_url(serve), *args],
        capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
    )


def summary(serve: Serve) -> dict:
    r = http_request(serve.port("gateway"), "GET", "/qoe/summary")
    assert r.status == 200, str(r)
    return r.json()


def metrics(serve: Serve) -> dict[str, float]:
    r = http_request(serve.port("gateway"), "GET", "/metrics")
    assert r.status == 200, str(r)
    out = {}
    for line in r.body.decode().splitlines():
        if line.startswith("swarmdrop_qoe_"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def stored_subjects(state: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as db:
        return db.execute("SELECT subject, tier FROM qoe_reports ORDER BY id").fetchall()


def test_an_anonymous_viewer_s_report_reaches_summary_and_metrics(swarmdrop_bin, pub, serve, tmp_path):
    proc = get(swarmdrop_bin, serve, pub, tmp_path / "out", "--anonymous")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "quality report sent to" in proc.stderr, proc.stderr[-2000:]
    total = sum(pub.length(p) for p in pub.targets)

    s = summary(serve)
    assert s["reports"] == 1, s
    assert s["bytes_by_path"] == {"p2p": 0, "edge": 0, "origin": total}, s
    assert set(s["classes"]) == set(pub.classes()), s
    for name, c in s["classes"].items():
        assert c["reports"] == 1 and c["assets"] == len(pub.of_class(name)), (name, c)
        assert 0 <= c["within_budget"] <= 1 and 0 <= c["p50_ms"] <= c["p99_ms"], (name, c)

    m = metrics(serve)
    assert m["swarmdrop_qoe_reports_total"] == 1, m
    assert m['swarmdrop_qoe_bytes_total{path="origin"}'] == total, m
    for name in pub.classes():
        n = len(pub.of_class(name))
        counted = sum(m.get(f'swarmdrop_qoe_assets_total{{class="{name}",within_budget="{w}"}}', 0)
                      for w in ("true", "false"))
        assert counted == n, (name, m)
        assert m[f'swarmdrop_qoe_arrival_seconds_bucket{{class="{name}",le="+Inf"}}'] == n, m
        assert m[f'swarmdrop_qoe_arrival_seconds_count{{class="{name}"}}'] == n, m
    # Version 2 reports carry the planner's decisions: every asset came from the origin
    # (the only path here), so at least one fetch per asset, for a reason the list names.
    decisions = {k: v for k, v in m.items() if k.startswith("swarmdrop_qoe_decisions_total{")}
    assert len(decisions) == 13, decisions
    assert sum(decisions.values()) >= len(pub.targets), decisions
    # The report's subject is the anonymous token's.
    assert [t for _, t in stored_subjects(Path(serve.argv[serve.argv.index("--state") + 1]))] == ["anonymous"]

    # --no-qoe sends nothing.
    proc = get(swarmdrop_bin, serve, pub, tmp_path / "again", "--anonymous", "--no-qoe")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert summary(serve)["reports"] == 1


def test_a_wallet_key_from_eth_account_signs_in_and_reports(swarmdrop_bin, pub, serve, tmp_path):
    acct = Account.create()
    key_file = tmp_path / "wallet.key"
    key_hex = acct.key.hex()
    key_file.write_text(("" if key_hex.startswith("0x") else "0x") + key_hex + "\n")
    proc = get(swarmdrop_bin, serve, pub, tmp_path / "out", "--wallet", str(key_file))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"signed in as {acct.address}" in proc.stderr, proc.stderr[-2000:]
    assert "quality report sent to" in proc.stderr, proc.stderr[-2000:]
    assert summary(serve)["reports"] == 1
    state = Path(serve.argv[serve.argv.index("--state") + 1])
    assert stored_subjects(state) == [(acct.address, "wallet")]


def test_wallet_and_anonymous_exclude_each_other(swarmdrop_bin, pub, serve, tmp_path):
    proc = get(swarmdrop_bin, serve, pub, tmp_path / "out", "--anonymous", "--wallet", str(tmp_path / "k"))
    assert proc.returncode != 0
    assert "--wallet" in proc.stderr and "--anonymous" in proc.stderr, proc.stderr


@pytest.mark.parametrize("content", [
    "0x" + "5e" * 31,  # 62 hex digits
    "0x" + "5e" * 31 + "zz",  # not hex
    "0" * 64,  # zero
    "ff" * 32,  # not below the curve order
    "0x" + "5e" * 32 + " extra-secret-5e5e",
])
def test_a_malformed_key_file_is_refused_by_name_without_echoing_it(swarmdrop_bin, pub, serve, tmp_path, content):
    key_file = tmp_path / "bad-wallet.key"
    key_file.write_text(content)
    proc = get(swarmdrop_bin, serve, pub, tmp_path / "out", "--wallet", str(key_file))
    assert proc.returncode != 0
    assert "bad-wallet.key" in proc.stderr, proc.stderr
    assert "5e5e5e" not in proc.stderr + proc.stdout and "secret" not in proc.stderr, proc.stderr
    assert "0000000000000000" not in proc.stderr and "ffffffffffffffff" not in proc.stderr, proc.stderr
    assert summary(serve)["reports"] == 0


def test_wallet_new_writes_a_private_key_eth_account_reads(swarmdrop_bin, tmp_path):
    key_file = tmp_path / "new.key"
    run = lambda *a: subprocess.run([str(swarmdrop_bin), "wallet", "new", "--out", str(key_file), *a],  # noqa: E731
                                    capture_output=True, text=True, timeout=30)
    proc = run("--json")
    assert proc.returncode == 0, proc.stderr
    import json
    address = json.loads(proc.stdout)["address"]
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert Account.from_key(key_file.read_text().strip()).address == address
    before = key_file.read_text()
    proc = run()
    assert proc.returncode != 0 and "--force" in proc.stderr, proc.stderr
    assert key_file.read_text() == before
    proc = run("--force")
    assert proc.returncode == 0, proc.stderr
    assert key_file.read_text() != before
    assert Account.from_key(key_file.read_text().strip()).address == proc.stdout.strip()


def test_reports_are_refused_without_a_token_or_with_bad_fields(pub, serve):
    port = serve.port("gateway")
    report = {
        "version": 1, "client_id": "abc", "wall_ms": 10,
        "bytes_by_path": {"p2p": 0, "edge": 5, "origin": 0},
        "assets": [{"path": "a.bin", "class": "bulk", "bytes": 5, "budget_ms": 100,
                    "arrival_ms": 50, "within_budget": True}],
    }
    assert_refused(http_request(port, "POST", "/qoe", report), "missing_token", 401)
    token = anonymous_token(serve.gateway())["token"]
    auth = {"Authorization": f"Bearer {token}"}
    r = http_request(port, "POST", "/qoe", report, headers=auth)
    assert r.status == 202, str(r)
    bad = [
        ({**report, "extra": 1}, "extra"),
        ({**report, "wall_ms": -1}, "wall_ms"),
        ({**report, "assets": [{**report["assets"][0], "class": "Not A Class"}]}, "assets[0].class"),
        ({**report, "assets": [{**report["assets"][0], "arrival_ms": -3}]}, "assets[0].arrival_ms"),
        ({**report, "bytes_by_path": {"p2p": 0, "edge": 5}}, "origin"),
        ({**report, "decisions": {"hedge": 1}}, "decisions"),
        ({**report, "version": 2, "decisions": {"hedge": 1, "invented": 2}}, "decisions.invented"),
        ({**report, "version": 3}, "version"),
    ]
    for body, field in bad:
        refusal = assert_refused(http_request(port, "POST", "/qoe", body, headers=auth), "malformed_report", 400)
        assert field in refusal["detail"], (field, refusal)
    too_big = b'{"pad": "' + b"x" * (300 * 1024) + b'"}'
    assert http_request(port, "POST", "/qoe", too_big, headers=auth).status == 413
    # A version 2 report's decisions are counted.
    r = http_request(port, "POST", "/qoe", {**report, "version": 2, "decisions": {"hedge": 4}}, headers=auth)
    assert r.status == 202, str(r)
    assert metrics(serve)['swarmdrop_qoe_decisions_total{reason="hedge"}'] == 4
    assert summary(serve)["reports"] == 2
    assert metrics(serve)['swarmdrop_qoe_refused_total{reason="malformed_report"}'] == len(bad)
