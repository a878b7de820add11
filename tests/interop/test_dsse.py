"""The DSSE provenance envelope verifies with securesystemslib and the targets key from root.json."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from pathlib import Path

import pytest
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import CryptoSigner, SSlibKey

from sd_interop import latest_version, read_json, signed_targets, tiny_png

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def role_keys(published: Path, role: str) -> list[SSlibKey]:
    root = read_json(published / "metadata" / "root.json")["signed"]
    keyids = root["roles"][role]["keyids"]
    assert keyids, f"root.json lists no keyids for {role}"
    return [SSlibKey.from_dict(kid, copy.deepcopy(root["keys"][kid])) for kid in keyids]


def envelope_path(published: Path) -> Path:
    v = latest_version(published, "targets")
    p = published / "provenance" / f"{v}.dsse.json"
    assert p.is_file(), f"missing provenance envelope {p}"
    return p


def load_envelope_dict(published: Path) -> dict:
    return read_json(envelope_path(published))


def envelope(d: dict) -> Envelope:
    # Envelope.from_dict mutates its argument: always hand it a copy.
    return Envelope.from_dict(copy.deepcopy(d))


def statement(published: Path) -> dict:
    env = envelope(load_envelope_dict(published))
    return json.loads(env.payload)


# --------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------


def test_envelope_verifies_with_targets_key(pristine_published):
    raw = load_envelope_dict(pristine_published)
    assert raw["payloadType"] == PAYLOAD_TYPE
    targets_keys = role_keys(pristine_published, "targets")
    targets_keyids = {k.keyid for k in targets_keys}
    sig_keyids = {s["keyid"] for s in raw["signatures"]}
    assert sig_keyids & targets_keyids, (
        f"no envelope signature carries a targets keyid: signatures {sorted(sig_keyids)}, "
        f"targets role {sorted(targets_keyids)}"
    )
    accepted = envelope(raw).verify(targets_keys, 1)
    assert set(accepted) <= targets_keyids and accepted


def test_envelope_not_verifiable_with_other_role_keys(pristine_published):
    env = envelope(load_envelope_dict(pristine_published))
    for role in ("root", "snapshot", "timestamp"):
        keys = role_keys(pristine_published, role)
        with pytest.raises(VerificationError):
            env.verify(keys, 1)


def test_statement_subjects_cover_every_target(pristine_published, pristine_drop):
    st = statement(pristine_published)
    assert st.get("_type") == STATEMENT_TYPE, f"_type is {st.get('_type')!r}"
    assert st.get("predicateType") == PREDICATE_TYPE, f"predicateType is {st.get('predicateType')!r}"
    assert isinstance(st.get("predicate"), dict), "statement has no predicate object"
    subjects = st.get("subject")
    assert isinstance(subjects, list) and subjects, "statement has no subjects"

    by_name: dict[str, str] = {}
    for s in subjects:
        name = s["name"]
        assert name not in by_name, f"duplicate subject {name}"
        by_name[name] = s["digest"]["sha256"]

    targets = signed_targets(pristine_published)
    missing = sorted(set(targets) - set(by_name))
    assert not missing, f"targets not covered by provenance subjects: {missing}"
    for path, info in sorted(targets.items()):
        want = hashlib.sha256((pristine_drop / path).read_bytes()).hexdigest()
        assert info["hashes"]["sha256"] == want, f"{path}: targets metadata sha256 is wrong"
        assert by_name[path] == want, f"{path}: subject sha256 {by_name[path]} != {want}"


def test_flipped_payload_byte_fails_verification(pristine_published):
    raw = load_envelope_dict(pristine_published)
    payload = bytearray(base64.b64decode(raw["payload"]))
    payload[len(payload) // 2] ^= 0x01
    raw["payload"] = base64.b64encode(bytes(payload)).decode()
    with pytest.raises(VerificationError) as excinfo:
        envelope(raw).verify(role_keys(pristine_published, "targets"), 1)
    assert type(excinfo.value) is VerificationError


def test_changed_payload_type_fails_verification(pristine_published):
    raw = load_envelope_dict(pristine_published)
    raw["payloadType"] = "application/json"
    with pytest.raises(VerificationError):
        envelope(raw).verify(role_keys(pristine_published, "targets"), 1)


def test_signature_from_another_key_is_rejected(pristine_published):
    targets_keys = role_keys(pristine_published, "targets")
    raw = load_envelope_dict(pristine_published)
    env = envelope(raw)

    # 1. A forger's signature placed under the targets keyid.
    forger = CryptoSigner.generate_ed25519(keyid=targets_keys[0].keyid)
    forged = Envelope(env.payload, env.payload_type, {})
    forged.sign(forger)
    assert forged.verify([forger.public_key], 1), "test harness: forger must verify its own signature"
    with pytest.raises(VerificationError) as excinfo:
        forged.verify(targets_keys, 1)
    assert type(excinfo.value) is VerificationError

    # 2. An envelope signed by an unrelated key under its own keyid.
    other = CryptoSigner.generate_ed25519()
    alien = Envelope(env.payload, env.payload_type, {})
    alien.sign(other)
    with pytest.raises(VerificationError) as excinfo:
        alien.verify(targets_keys, 1)
    assert type(excinfo.value) is VerificationError

    # 3. Round trip through JSON with the forged signature (what a client would read).
    d = forged.to_dict()
    with pytest.raises(VerificationError):
        envelope(d).verify(targets_keys, 1)


def test_new_version_gets_new_envelope(swarmdrop, keydir, drop_dir, published):
    new = "frames/f901-dsse.png"
    data = tiny_png(901)
    (drop_dir / new).write_bytes(data)
    swarmdrop.pack(drop_dir, keydir, published)
    assert latest_version(published, "targets") == 2
    assert (published / "provenance" / "1.dsse.json").is_file(), "v1 provenance must stay published"
    raw = load_envelope_dict(published)  # 2.dsse.json
    envelope(raw).verify(role_keys(published, "targets"), 1)
    st = json.loads(envelope(raw).payload)
    digests = {s["name"]: s["digest"]["sha256"] for s in st["subject"]}
    assert digests.get(new) == hashlib.sha256(data).hexdigest(), f"{new} missing from v2 provenance subjects"
