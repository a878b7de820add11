"""The signed SHA-256 midstates of p2p targets, checked by an independent SHA-256.

Clients check each piece against ``custom.p2p.sha256_midstates`` instead of reading a
finished file back. Here a plain-Python SHA-256 (FIPS 180-4, written from the standard,
not from swarmdrop's code) replays every published p2p target and compares its state at
each piece boundary with the signed list, and its digest with hashlib's and the signed
``sha256``.
"""

from __future__ import annotations

import hashlib
import struct

from sd_interop import P2P_CLASSES, signed_targets, target_file_path

K = [
    0x428A2F98, 0x71374491, 0xB5C0FBCF, 0xE9B5DBA5, 0x3956C25B, 0x59F111F1, 0x923F82A4, 0xAB1C5ED5,
    0xD807AA98, 0x12835B01, 0x243185BE, 0x550C7DC3, 0x72BE5D74, 0x80DEB1FE, 0x9BDC06A7, 0xC19BF174,
    0xE49B69C1, 0xEFBE4786, 0x0FC19DC6, 0x240CA1CC, 0x2DE92C6F, 0x4A7484AA, 0x5CB0A9DC, 0x76F988DA,
    0x983E5152, 0xA831C66D, 0xB00327C8, 0xBF597FC7, 0xC6E00BF3, 0xD5A79147, 0x06CA6351, 0x14292967,
    0x27B70A85, 0x2E1B2138, 0x4D2C6DFC, 0x53380D13, 0x650A7354, 0x766A0ABB, 0x81C2C92E, 0x92722C85,
    0xA2BFE8A1, 0xA81A664B, 0xC24B8B70, 0xC76C51A3, 0xD192E819, 0xD6990624, 0xF40E3585, 0x106AA070,
    0x19A4C116, 0x1E376C08, 0x2748774C, 0x34B0BCB5, 0x391C0CB3, 0x4ED8AA4A, 0x5B9CCA4F, 0x682E6FF3,
    0x748F82EE, 0x78A5636F, 0x84C87814, 0x8CC70208, 0x90BEFFFA, 0xA4506CEB, 0xBEF9A3F7, 0xC67178F2,
]
IV = [0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19]
MASK = 0xFFFFFFFF


def rotr(x: int, n: int) -> int:
    return ((x >> n) | (x << (32 - n))) & MASK


def compress(state: list[int], block: bytes) -> list[int]:
    w = list(struct.unpack(">16I", block))
    for t in range(16, 64):
        s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3)
        s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10)
        w.append((w[t - 16] + s0 + w[t - 7] + s1) & MASK)
    a, b, c, d, e, f, g, h = state
    for t in range(64):
        t1 = (h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[t] + w[t]) & MASK
        t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) & MASK
        a, b, c, d, e, f, g, h = (t1 + t2) & MASK, a, b, c, (d + t1) & MASK, e, f, g
    return [(x + y) & MASK for x, y in zip(state, [a, b, c, d, e, f, g, h])]


def midstates_and_digest(data: bytes, piece_length: int) -> tuple[list[str], str]:
    """The state after each piece but the last (hex), and the SHA-256 (hex)."""
    state = list(IV)
    boundaries = []
    whole = len(data) - len(data) % 64
    for offset in range(0, whole, 64):
        state = compress(state, data[offset : offset + 64])
        end = offset + 64
        if end % piece_length == 0 and end < len(data):
            boundaries.append(struct.pack(">8I", *state).hex())
    tail = data[whole:] + b"\x80"
    tail += b"\x00" * ((56 - len(tail)) % 64) + struct.pack(">Q", 8 * len(data))
    for offset in range(0, len(tail), 64):
        state = compress(state, tail[offset : offset + 64])
    return boundaries, struct.pack(">8I", *state).hex()


def test_the_replay_is_sha256():
    for length in (0, 1, 55, 56, 64, 119, 1000):
        data = bytes(range(256)) * (length // 256 + 1)
        assert midstates_and_digest(data[:length], 64)[1] == hashlib.sha256(data[:length]).hexdigest()


def test_every_p2p_target_signs_the_midstates_of_its_bytes(pristine_published):
    checked = 0
    for path, info in sorted(signed_targets(pristine_published).items()):
        custom = info["custom"]
        if custom["class"] not in P2P_CLASSES:
            continue
        p2p = custom["p2p"]
        signed = p2p.get("sha256_midstates")
        assert isinstance(signed, str), f"{path}: no sha256_midstates in {sorted(p2p)}"
        data = target_file_path(pristine_published, path, info).read_bytes()
        if len(data) > 4 << 20:
            continue  # plain Python hashes about a megabyte a second
        boundaries, digest = midstates_and_digest(data, p2p["piece_length"])
        assert digest == info["hashes"]["sha256"], f"{path}: replayed SHA-256 differs"
        assert len(signed) == 64 * len(boundaries), f"{path}: {len(signed) // 64} midstates for {len(boundaries)} boundaries"
        got = [signed[i : i + 64] for i in range(0, len(signed), 64)]
        for index, (ours, theirs) in enumerate(zip(boundaries, got)):
            assert ours == theirs, f"{path}: midstate after piece {index} differs"
        checked += 1
    assert checked > 0, "no p2p target small enough to replay"
