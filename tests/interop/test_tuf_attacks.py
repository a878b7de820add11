"""The TUF attack classes, by name, against ``swarmdrop tuf-client`` and python-tuf.

The threat model is the one in the TUF specification: the network, the
mirrors and any online key may be hostile.  Each attack class listed there
gets tests named after it, on a repository we forge byte by byte
(``tuf_repo_sim``): arbitrary installation, endless data, extraneous
dependencies, fast-forward, indefinite freeze, malicious mirrors,
mix-and-match, rollback (each role), key compromise below threshold, and wrong
software.  The positive paths these attacks are variations of are in
``test_tuf_workflow.py``.

Every scenario runs against ``$SWARMDROP_BIN tuf-client`` and against
python-tuf's ngclient behind the same CLI; the harness that does so, and what
the tests can observe of a client, is described in ``tuf_client_support.py``.
"""

from __future__ import annotations

import subprocess
import time
from datetime import timedelta

import pytest
from securesystemslib.signer import Key, Signature
from tuf.api.metadata import Root, Snapshot, Targets, Timestamp

from tuf_client_support import client, make_client, make_repo, repo, tuf_client  # noqa: F401 - fixtures
from tuf_client_support import (
    APP,
    APP2,
    EVIL,
    add_and_release,
    known_python_tuf_gap,
    target_fetches,
    top,
)
from tuf_repo_sim import Canned, utc_now

# An endless body must end in an error well before this (python-tuf: ~1 s).
ENDLESS_TIMEOUT_S = 30.0
# ... and after reading at most this much of it (limits plus kernel socket buffers).
ENDLESS_MAX_SENT = 64 << 20

PAST = timedelta(days=-1)


# --- arbitrary installation ------------------------------------------------


def test_arbitrary_installation_target_bytes_replaced(repo, client):
    """Same length, other bytes at the target URL: refused, nothing stored."""
    add_and_release(repo.sim, "app.bin", APP)
    forged = EVIL[: len(APP)].ljust(len(APP), b"!")
    repo.server.override(repo.sim.target_url_path("app.bin"), forged)

    client.failed(client.download("app.bin"), "LengthOrHashMismatchError")
    assert client.downloaded() == {}
    assert client.trusted() == top(1, 2, 2, 2)


def test_arbitrary_installation_targets_signed_by_unknown_key(repo, client):
    """Online keys stolen, targets key not: a forged targets role is refused and never used."""
    sim = repo.sim
    attacker = sim.new_signer()
    sim.add_target("evil.bin", EVIL)
    sim.publish(Targets.type, signers=[attacker])
    sim.release()  # snapshot and timestamp correctly signed: they are online keys

    client.failed(client.download("evil.bin"), "UnsignedMetadataError")
    assert client.downloaded() == {}
    assert client.trusted() == top(1, 2, 2)  # no targets role trusted at all
    assert target_fetches(repo.server) == [], client.describe()


def test_arbitrary_installation_root_signed_by_attacker(repo, client):
    """A new root signed only by the attacker's own keys is refused; root.json stays as it was."""
    sim = repo.sim
    attacker = sim.new_signer()
    for role in (Root.type, Timestamp.type, Snapshot.type, Targets.type):
        for keyid in sim.role_keyids(role):
            sim.revoke_key(role, keyid)
        sim.add_key(role, attacker)
    sim.publish(Root.type, signers=[attacker])
    v1 = sim.published_file(Root.type, 1)

    client.failed(client.refresh(), "UnsignedMetadataError")
    assert client.trusted() == top(1)
    assert (client.metadata_dir / "root.json").read_bytes() == v1


# --- endless data ----------------------------------------------------------


@pytest.mark.parametrize("what", ["root", "timestamp", "snapshot", "target"])
def test_endless_data_stream(repo, client, what: str):
    """An unbounded body ends in an error in bounded time, with nothing stored from it."""
    add_and_release(repo.sim, "app.bin", APP)
    path = {
        "root": "/metadata/2.root.json",
        "timestamp": "/metadata/timestamp.json",
        "snapshot": "/metadata/2.snapshot.json",
        "target": repo.sim.target_url_path("app.bin"),
    }[what]
    repo.server.override(path, Canned(endless=True))

    start = time.monotonic()
    try:
        proc = client.download("app.bin", timeout=ENDLESS_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{client.impl} still reading an endless {what} after {ENDLESS_TIMEOUT_S:.0f} s", pytrace=False)
    elapsed = time.monotonic() - start
    client.failed(proc, "DownloadLengthMismatchError")
    assert client.downloaded() == {}
    assert path in repo.server.fetched()
    want = {"root": top(1), "timestamp": top(1), "snapshot": top(1, 2), "target": top(1, 2, 2, 2)}[what]
    assert client.trusted() == want, client.describe()
    # Reading on until the stream ends (1 GiB cap) and failing only then is
    # the bug: the client must stop at its length limit (python-tuf: <8 MiB
    # written here, socket buffers included).
    sent = max(r.sent for r in repo.server.requests() if r.path == path)
    assert sent < ENDLESS_MAX_SENT, (
        f"{client.impl} read {sent >> 20} MiB of an endless {what} before giving up ({elapsed:.1f} s)"
    )


def test_endless_data_target_longer_than_signed_length(repo, client):
    """The right bytes plus one: the signed length is a hard limit, not a hint."""
    add_and_release(repo.sim, "app.bin", APP)
    repo.server.override(repo.sim.target_url_path("app.bin"), APP + b"\n")

    client.failed(client.download("app.bin"), "DownloadLengthMismatchError")
    assert client.downloaded() == {}


# --- extraneous dependencies -----------------------------------------------


def test_extraneous_dependencies_target_outside_delegated_paths(repo, client):
    """A role trusted for ``libs/*`` cannot add ``app/extra``; its own paths still work."""
    sim = repo.sim
    sim.delegate(Targets.type, "libs", paths=["libs/*"])
    sim.add_target("libs/ok.so", b"a library\n", "libs")
    sim.add_target("app/extra", EVIL, "libs")
    sim.release(Targets.type, "libs")

    client.failed(client.download("app/extra"), "LookupError")
    assert client.downloaded() == {}
    assert target_fetches(repo.server) == [], client.describe()

    client.ok(client.download("libs/ok.so"))
    assert client.downloaded() == {"libs%2Fok.so": b"a library\n"}


def test_extraneous_dependencies_undelegated_role_ignored(repo, client):
    """A role listed in snapshot but delegated by nobody is never consulted."""
    sim = repo.sim
    sim.delegate(Targets.type, "rogue", paths=["*/*"])
    sim.add_target("app/extra", EVIL, "rogue")
    sim.release(Targets.type, "rogue")
    # Drop the delegation again: rogue stays published and listed in snapshot.
    sim.targets.signed.delegations = None
    sim.release(Targets.type)

    client.failed(client.download("app/extra"), "LookupError")
    assert client.downloaded() == {}
    assert not any("rogue" in p for p in repo.server.fetched()), client.describe()
    assert client.trusted() == top(1, 3, 3, 3)


# --- fast-forward ----------------------------------------------------------


def test_fast_forward_timestamp_without_key_refused(repo, client):
    """Timestamp v99 signed by a key root does not list is refused and leaves no mark.

    The next honest timestamp (v2) is accepted: had v99 been remembered,
    v2 would look like a rollback and the client would be stuck.
    """
    sim = repo.sim
    sim.timestamp.signed.version = 99
    sim.publish(Timestamp.type, bump=False, signers=[sim.new_signer()])
    client.failed(client.refresh(), "UnsignedMetadataError")
    assert client.trusted() == top(1)

    sim.timestamp.signed.version = 2
    sim.publish(Timestamp.type, bump=False)
    client.ok(client.refresh())
    assert client.trusted() == top(1, 2, 1, 1)


def test_fast_forward_timestamp_recovery_after_key_rotation(repo, client):
    """A stolen timestamp key pushed v99; rotating that key in root lets v2 in again (5.3.11)."""
    sim = repo.sim
    sim.timestamp.signed.version = 98
    sim.publish(Timestamp.type)  # v99, validly signed with the stolen key
    client.ok(client.refresh())
    assert client.trusted() == top(1, 99, 1, 1)

    sim.rotate_keys(Timestamp.type)
    sim.publish(Root.type)  # v2
    sim.timestamp.signed.version = 2
    sim.publish(Timestamp.type, bump=False)
    client.ok(client.refresh())
    assert client.trusted() == top(2, 2, 1, 1)


def test_fast_forward_snapshot_recovery_after_key_rotation(repo, client):
    """Snapshot pushed to v99; rotating snapshot and timestamp keys recovers."""
    sim = repo.sim
    sim.snapshot.signed.version = 98
    sim.release()  # snapshot v99, timestamp v2
    client.ok(client.refresh())
    assert client.trusted() == top(1, 2, 99, 1)

    sim.rotate_keys(Snapshot.type)
    sim.rotate_keys(Timestamp.type)
    sim.publish(Root.type)
    sim.snapshot.signed.version = 1
    sim.release()  # snapshot v2, timestamp v3
    client.ok(client.refresh())
    assert client.trusted() == top(2, 3, 2, 1)


def test_fast_forward_snapshot_recovery_after_snapshot_key_rotation_only(request, repo, client):
    """5.3.11: rotating the snapshot keys alone must drop the trusted timestamp and snapshot."""
    known_python_tuf_gap(
        request, client,
        "ngclient does not delete timestamp.json/snapshot.json when root rotates the snapshot keys; "
        "the still-valid local timestamp's snapshot v99 then blocks the recovered snapshot",
    )
    sim = repo.sim
    sim.snapshot.signed.version = 98
    sim.release()  # snapshot v99, timestamp v2
    client.ok(client.refresh())

    sim.rotate_keys(Snapshot.type)
    sim.publish(Root.type)
    sim.snapshot.signed.version = 1
    sim.release()  # snapshot v2, timestamp v3 (timestamp key unchanged)
    client.ok(client.refresh())
    assert client.trusted() == top(2, 3, 2, 1)


def test_fast_forward_targets_recovery_after_snapshot_key_rotation(repo, client):
    """Targets pushed to v99 (with snapshot's help); a snapshot key rotation recovers."""
    sim = repo.sim
    sim.targets.signed.version = 98
    sim.release(Targets.type)  # targets v99, snapshot v2, timestamp v2
    client.ok(client.refresh())
    assert client.trusted() == top(1, 2, 2, 99)

    sim.rotate_keys(Snapshot.type)
    sim.rotate_keys(Targets.type)
    sim.publish(Root.type)
    sim.targets.signed.version = 1
    sim.release(Targets.type)  # targets v2, snapshot v3, timestamp v3
    client.ok(client.refresh())
    assert client.trusted() == top(2, 3, 3, 2)


# --- indefinite freeze -----------------------------------------------------


@pytest.mark.parametrize("role", [Root.type, Timestamp.type, Snapshot.type, Targets.type])
def test_indefinite_freeze_expired_role(repo, client, role: str):
    """The newest metadata the repository offers is expired: refresh fails.

    Root is special: an expired new root is still trusted (5.3.8 persists it
    before 5.3.10 checks expiry of the final root), then the update stops.
    """
    sim = repo.sim
    expired = utc_now() + PAST
    if role == Root.type:
        sim.publish(Root.type, expires=expired)
        want = top(2)
    elif role == Timestamp.type:
        sim.publish(Timestamp.type, expires=expired)
        want = top(1)
    elif role == Snapshot.type:
        sim.snapshot.signed.expires = expired
        sim.release()
        want = top(1, 2)
    else:
        sim.targets.signed.expires = expired
        sim.release(Targets.type)
        want = top(1, 2, 2)
    client.failed(client.refresh(), "ExpiredMetadataError")
    assert client.trusted() == want


def test_indefinite_freeze_same_expired_timestamp_replayed(repo, client):
    """The client's own timestamp has expired and the repository keeps serving that same version.

    Nothing is 'new', which a naive client reads as 'up to date'.  It is the
    freeze attack itself: stale metadata must fail the refresh.  (The trusted
    timestamp is planted in the metadata dir, as if accepted while it was fresh.)
    """
    sim = repo.sim
    stale = sim.publish(Timestamp.type, expires=utc_now() + PAST)  # v2
    (client.metadata_dir / "timestamp.json").write_bytes(stale)

    client.failed(client.refresh(), "ExpiredMetadataError")
    assert client.trusted() == top(1, 2)
    assert (client.metadata_dir / "timestamp.json").read_bytes() == stale


def test_indefinite_freeze_expired_delegated_role(repo, client):
    """Expiry applies to delegated roles too: an expired ``libs`` yields no target."""
    sim = repo.sim
    sim.delegate(Targets.type, "libs", paths=["libs/*"])
    sim.add_target("libs/a.so", b"lib\n", "libs")
    sim.delegates["libs"].signed.expires = utc_now() + PAST
    sim.release(Targets.type, "libs")

    client.failed(client.download("libs/a.so"), "ExpiredMetadataError")
    assert client.downloaded() == {}
    assert client.trusted() == top(1, 2, 2, 2)


# --- malicious mirrors -----------------------------------------------------


def test_malicious_mirrors_bad_target_mirror_then_good(repo, client):
    """A mirror serving tampered bytes is refused and leaves no trace; the honest one works next."""
    add_and_release(repo.sim, "app.bin", APP)
    bad = repo.mirror()
    bad.override(repo.sim.target_url_path("app.bin"), EVIL)

    client.failed(client.download("app.bin", mirror=bad), "DownloadLengthMismatchError")
    assert client.downloaded() == {}
    assert bad.fetched() == [repo.sim.target_url_path("app.bin")]

    client.ok(client.download("app.bin"))
    assert client.downloaded() == {"app.bin": APP}


def test_malicious_mirrors_stale_metadata_mirror_then_good(repo, client):
    """A metadata mirror replaying an old timestamp cannot hold the client back from a good one."""
    sim = repo.sim
    old_timestamp = sim.published_file(Timestamp.type)
    add_and_release(sim, "app.bin", APP)  # v2
    client.ok(client.refresh())

    stale = repo.mirror()
    stale.override("/metadata/timestamp.json", old_timestamp)
    add_and_release(sim, "app.bin", APP2)  # v3 on the honest server
    client.failed(client.refresh(server=stale), "BadVersionNumberError")
    assert client.trusted() == top(1, 2, 2, 2)

    client.ok(client.download("app.bin"))
    assert client.trusted() == top(1, 3, 3, 3)
    assert client.downloaded() == {"app.bin": APP2}


# --- mix-and-match ---------------------------------------------------------


@pytest.mark.parametrize("consistent", [True, False], ids=["consistent", "plain"])
def test_mix_and_match_snapshot_from_other_release(make_repo, make_client, consistent: bool):
    """Timestamp v3 names snapshot v3; the snapshot served is the (validly signed) v2."""
    r = make_repo(consistent_snapshot=consistent)
    c = make_client(r)
    r.sim.release()  # v2
    old_snapshot = r.sim.published_file(Snapshot.type, 2)
    r.sim.release()  # v3
    r.server.override(r.sim.metadata_path(Snapshot.type, 3), old_snapshot)

    c.failed(c.refresh(), "BadVersionNumberError")
    assert c.trusted() == top(1, 3)


def test_mix_and_match_targets_from_other_release(repo, client):
    """Snapshot v3 names targets v3; the targets served is the (validly signed) v2."""
    sim = repo.sim
    add_and_release(sim, "app.bin", APP)  # targets v2
    old_targets = sim.published_file(Targets.type, 2)
    add_and_release(sim, "app.bin", APP2)  # targets v3
    repo.server.override(sim.metadata_path(Targets.type, 3), old_targets)

    client.failed(client.download("app.bin"), "BadVersionNumberError")
    assert client.trusted() == top(1, 3, 3)
    assert client.downloaded() == {}


def test_mix_and_match_snapshot_hash_mismatch(make_repo, make_client):
    """Timestamp pins snapshot by hash: another validly signed snapshot of the same version is refused."""
    r = make_repo(meta_hashes=True)
    c = make_client(r)
    r.sim.release()  # snapshot v2, hash in timestamp
    twin = r.sim.copy_md(Snapshot.type)
    twin.signed.expires = twin.signed.expires + timedelta(days=1)
    twin.signatures.clear()
    for s in r.sim.authorised_signers(Snapshot.type):
        twin.sign(s, append=True)
    r.server.override(r.sim.metadata_path(Snapshot.type, 2), twin.to_bytes())

    c.failed(c.refresh(), "LengthOrHashMismatchError")
    assert c.trusted() == top(1, 2)


# --- rollback, each role ---------------------------------------------------


def test_rollback_root(repo, client):
    """3.root.json answered with root v1 (validly signed by the same key): refused."""
    sim = repo.sim
    sim.publish(Root.type)  # v2
    client.ok(client.refresh())
    assert client.trusted()[Root.type] == 2

    repo.server.override("/metadata/3.root.json", sim.published_file(Root.type, 1))
    client.failed(client.refresh(), "BadVersionNumberError")
    assert client.trusted() == top(2, 1, 1, 1)


def test_rollback_timestamp(repo, client):
    """Timestamp v1 replayed after v2 was trusted: refused, v2 stays."""
    sim = repo.sim
    old = sim.published_file(Timestamp.type)
    sim.release()  # v2
    client.ok(client.refresh())

    repo.server.override("/metadata/timestamp.json", old)
    client.failed(client.refresh(), "BadVersionNumberError")
    assert client.trusted() == top(1, 2, 2, 1)


def test_rollback_snapshot(repo, client):
    """A new timestamp (stolen key) pointing back at snapshot v1: refused, and not kept.

    The refused timestamp must not be persisted either (tough's CVE-2025-2888
    cached it before the check).
    """
    sim = repo.sim
    sim.release()  # snapshot v2, timestamp v2
    client.ok(client.refresh())

    sim.repoint(Snapshot.type, 1)
    sim.refresh_timestamp_meta()
    sim.publish(Timestamp.type)  # v3 -> snapshot v1
    client.failed(client.refresh(), "BadVersionNumberError")
    assert client.trusted() == top(1, 2, 2, 1)


def test_rollback_targets(repo, client):
    """A new snapshot listing targets v1 after v2 was trusted: refused.

    The new timestamp is itself fine and stays trusted (it was persisted before snapshot).
    """
    sim = repo.sim
    sim.release(Targets.type)  # targets v2
    client.ok(client.refresh())

    sim.repoint(Targets.type, 1)
    sim.release()  # snapshot v3 -> targets v1
    client.failed(client.refresh(), "BadVersionNumberError")
    assert client.trusted() == top(1, 3, 2, 2)


def test_rollback_delegated(repo, client):
    """Same for a delegated role: snapshot may not list an older ``libs`` than one trusted."""
    sim = repo.sim
    sim.delegate(Targets.type, "libs", paths=["libs/*"])
    sim.add_target("libs/a.so", b"lib a\n", "libs")
    sim.release(Targets.type, "libs")  # libs v1
    add_and_release(sim, "libs/b.so", b"lib b\n", "libs")  # libs v2
    client.ok(client.download("libs/b.so"))
    assert client.trusted() == top(1, 3, 3, 2, libs=2)

    sim.repoint("libs", 1)
    sim.release()  # snapshot v4 -> libs v1
    client.failed(client.download("libs/a.so"), "BadVersionNumberError")
    assert client.trusted() == top(1, 4, 3, 2, libs=2)
    assert set(client.downloaded()) == {"libs%2Fb.so"}


def test_rollback_snapshot_drops_a_role(repo, client):
    """A role the trusted snapshot lists may not vanish from the next one (5.5.5)."""
    sim = repo.sim
    sim.delegate(Targets.type, "libs", paths=["libs/*"])
    sim.release(Targets.type, "libs")  # snapshot v2 lists targets.json and libs.json
    client.ok(client.refresh())

    sim.refresh_snapshot_meta()
    del sim.snapshot.signed.meta["libs.json"]
    sim.publish(Snapshot.type)  # v3, without libs
    sim.refresh_timestamp_meta()
    sim.publish(Timestamp.type)  # v3
    client.failed(client.refresh(), "RepositoryError")
    assert client.trusted() == top(1, 3, 2, 2)


# --- key compromise below threshold ----------------------------------------


def test_key_compromise_below_threshold_root(repo, client):
    """Root threshold 2 of {A, B}; with A alone the attacker cannot sign in a root trusting X."""
    sim = repo.sim
    (a,) = sim.authorised_signers(Root.type)
    sim.add_key(Root.type)
    sim.set_threshold(Root.type, 2)
    sim.publish(Root.type)  # v2, signed by A and B
    client.ok(client.refresh())
    assert client.trusted()[Root.type] == 2

    x = sim.add_key(Root.type)
    sim.set_threshold(Root.type, 1)
    sim.publish(Root.type, signers=[a, x])  # v3: new threshold met, old (2 of A, B) not
    client.failed(client.refresh(), "UnsignedMetadataError")
    assert client.trusted() == top(2, 1, 1, 1)
    assert "/metadata/3.root.json" in repo.server.fetched()


def test_key_compromise_below_threshold_targets(repo, client):
    """Targets threshold 2; one stolen targets key (plus the online keys) cannot add a target."""
    sim = repo.sim
    (t1,) = sim.authorised_signers(Targets.type)
    sim.add_key(Targets.type)
    sim.set_threshold(Targets.type, 2)
    sim.publish(Root.type)
    add_and_release(sim, "app.bin", APP)  # two distinct keys: threshold met
    client.ok(client.refresh())
    assert client.trusted() == top(2, 2, 2, 2)

    sim.add_target("evil.bin", EVIL)
    sim.publish(Targets.type, signers=[t1])
    sim.release()
    client.failed(client.download("evil.bin"), "UnsignedMetadataError")
    assert client.trusted() == top(2, 3, 3, 2)
    assert client.downloaded() == {}
    assert target_fetches(repo.server) == [], client.describe()


def test_key_compromise_below_threshold_one_key_under_two_keyids(request, repo, client):
    """Threshold 2 counts distinct keys: one key listed under two keyids, signing twice, is 1.

    Root v2 lists the targets key under its real keyid and a second, made-up
    keyid.  Either refusing that root, or trusting it and refusing the targets
    role signed by 'both', is correct: the forged targets must not be trusted.
    """
    known_python_tuf_gap(
        request, client,
        "Root/Targets.get_verification_result counts keyids, not distinct keys "
        "(go-tuf fixed the same in theupdateframework/go-tuf#733)",
    )
    sim = repo.sim
    (t1,) = sim.authorised_signers(Targets.type)
    real = t1.public_key
    alias_id = "ab" * 32
    alias = Key.from_dict(alias_id, real.to_dict())
    sim.root.signed.add_key(alias, Targets.type)
    sim.set_threshold(Targets.type, 2)
    sim.publish(Root.type)  # v2

    sim.add_target("evil.bin", EVIL)
    sim.targets.signed.version += 1
    sim.sign(Targets.type, [t1])
    sig = sim.targets.signatures[real.keyid]
    sim.targets.signatures[alias_id] = Signature(alias_id, sig.signature)
    sim.put(Targets.type, sim.targets.to_bytes(), sim.targets.signed.version)
    sim.release()

    client.failed(client.download("evil.bin"), "UnsignedMetadataError")
    trusted = client.trusted()
    assert trusted.get(Targets.type) is None, f"forged targets trusted: {trusted}"
    assert trusted[Root.type] in (1, 2)
    assert client.downloaded() == {}


# --- wrong software --------------------------------------------------------


def test_wrong_software_other_signed_target(repo, client):
    """The bytes of another genuine target (tool 1.0) served for the one asked for (tool 2.0)."""
    sim = repo.sim
    sim.add_target("tool-1.0.bin", APP)
    sim.add_target("tool-2.0.bin", APP2)
    sim.release(Targets.type)
    repo.server.override(sim.target_url_path("tool-2.0.bin"), APP)

    client.failed(client.download("tool-2.0.bin"), "LengthOrHashMismatchError")
    assert client.downloaded() == {}
    client.ok(client.download("tool-1.0.bin"))
    assert client.downloaded() == {"tool-1.0.bin": APP}


def test_wrong_software_old_version_at_plain_url(make_repo, make_client):
    """Without consistent snapshots one URL holds every version: the old one is refused."""
    r = make_repo(consistent_snapshot=False)
    c = make_client(r)
    add_and_release(r.sim, "tool.bin", APP)
    add_and_release(r.sim, "tool.bin", APP2)
    r.server.override("/targets/tool.bin", APP)

    c.failed(c.download("tool.bin"), "LengthOrHashMismatchError")
    assert c.downloaded() == {}
    assert c.trusted() == top(1, 3, 3, 3)
