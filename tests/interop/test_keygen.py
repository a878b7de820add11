"""`swarmdrop keygen` writes standard PEM ed25519 keys that root.json and python-tuf agree with."""

from __future__ import annotations

import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from tuf.api.metadata import Metadata, Root

from sd_interop import read_json

ROLE_FILES = ("targets", "snapshot", "timestamp", "receipts")


def raw_pub(pub: Ed25519PublicKey) -> str:
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def load_pair(keydir: Path, stem: str) -> tuple[Ed25519PrivateKey, Ed25519PublicKey]:
    key_path, pub_path = keydir / f"{stem}.key", keydir / f"{stem}.pub"
    priv_pem, pub_pem = key_path.read_bytes(), pub_path.read_bytes()
    assert priv_pem.startswith(b"-----BEGIN PRIVATE KEY-----"), f"{key_path} is not PKCS#8 PEM"
    assert pub_pem.startswith(b"-----BEGIN PUBLIC KEY-----"), f"{pub_path} is not SPKI PEM"
    priv = serialization.load_pem_private_key(priv_pem, password=None)
    pub = serialization.load_pem_public_key(pub_pem)
    assert isinstance(priv, Ed25519PrivateKey), f"{key_path} is not ed25519"
    assert isinstance(pub, Ed25519PublicKey), f"{pub_path} is not ed25519"
    assert raw_pub(priv.public_key()) == raw_pub(pub), f"{pub_path} does not match {key_path}"
    mode = stat.S_IMODE(key_path.stat().st_mode)
    assert mode == 0o600, f"{key_path} has mode {oct(mode)}, want 0o600"
    return priv, pub


def test_keygen_writes_pem_ed25519_keys(keydir):
    assert (keydir / "keyset.json").is_file()
    read_json(keydir / "keyset.json")  # valid JSON
    roots = sorted(keydir.glob("root-*.key"))
    assert roots, "no root-N.key written"
    for stem in [p.stem for p in roots] + list(ROLE_FILES):
        load_pair(keydir, stem)


def test_root_json_lists_the_generated_keys(keydir, pristine_published):
    root = read_json(pristine_published / "metadata" / "1.root.json")["signed"]
    for role in ("targets", "snapshot", "timestamp"):
        _, pub = load_pair(keydir, role)
        publics = [root["keys"][kid]["keyval"]["public"] for kid in root["roles"][role]["keyids"]]
        assert raw_pub(pub) in publics, f"{role}.pub is not a {role} key in root.json"
        for kid in root["roles"][role]["keyids"]:
            k = root["keys"][kid]
            assert (k["keytype"], k["scheme"]) == ("ed25519", "ed25519"), f"{role} key {kid}: {k}"
    root_publics = {root["keys"][kid]["keyval"]["public"] for kid in root["roles"]["root"]["keyids"]}
    for p in sorted(keydir.glob("root-*.pub")):
        _, pub = load_pair(keydir, p.stem)
        assert raw_pub(pub) in root_publics, f"{p.name} is not a root key in root.json"


def test_keygen_refuses_to_overwrite_without_force(swarmdrop, tmp_path):
    d = tmp_path / "keys"
    swarmdrop.keygen(d)
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    proc = swarmdrop.run("keygen", "--out", d, check=False)
    assert proc.returncode != 0, "keygen overwrote existing keys without --force\n" + swarmdrop.describe(proc)
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before, "a refused keygen changed the key dir"
    swarmdrop.run("keygen", "--out", d, "--force")
    after = {p.name: p.read_bytes() for p in d.iterdir()}
    assert after["targets.key"] != before["targets.key"], "keygen --force did not write new keys"


def test_root_threshold_is_met_and_checked_by_python_tuf(swarmdrop, pristine_drop, tmp_path):
    keys = tmp_path / "keys"
    swarmdrop.keygen(keys, "--root-threshold", "2", "--root-keys", "3")
    for i in (1, 2, 3):
        load_pair(keys, f"root-{i}")
    out = tmp_path / "published"
    swarmdrop.pack(pristine_drop, keys, out)
    md = Metadata[Root].from_file(str(out / "metadata" / "1.root.json"))
    role = md.signed.roles["root"]
    assert role.threshold == 2, f"root threshold {role.threshold}, want 2"
    assert len(role.keyids) == 3, f"root has {len(role.keyids)} keys, want 3"
    res = md.signed.get_verification_result("root", md.signed_bytes, md.signatures)
    assert res.verified, f"1.root.json does not meet its own threshold: {len(res.signed)} valid signature(s)"
    assert len(res.signed) >= 2
