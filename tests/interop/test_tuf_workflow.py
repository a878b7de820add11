"""The positive paths of ``swarmdrop tuf-client``, against it and python-tuf.

The honest workflow the attacks in ``test_tuf_attacks.py`` are variations of:
a clean refresh and download (with the exact requests, consistent snapshots
or not, cached targets not fetched again), a root rotation chain that meets
the old and the new thresholds (and one that does not), delegations searched
in pre-order with terminating roles, hashed bins and TAP 15 succinct bins,
role and target names that need quoting; plus a self-test of the simulator's
path normalisation the quoting test relies on.

Every scenario runs against ``$SWARMDROP_BIN tuf-client`` and against
python-tuf's ngclient behind the same CLI; the harness that does so, and what
the tests can observe of a client, is described in ``tuf_client_support.py``.
"""

from __future__ import annotations

import hashlib

import pytest
from tuf.api.metadata import Root, Targets, Timestamp

from tuf_client_support import client, make_client, make_repo, repo, tuf_client  # noqa: F401 - fixtures
from tuf_client_support import (
    APP,
    APP2,
    add_and_release,
    metadata_fetches,
    target_fetches,
    top,
)
from tuf_repo_sim import quote_role


# --- positive paths --------------------------------------------------------


@pytest.mark.parametrize("consistent", [True, False], ids=["consistent", "plain"])
def test_clean_refresh_and_download(make_repo, make_client, consistent: bool):
    """The honest path, with the exact requests: versioned names only with consistent snapshots."""
    r = make_repo(consistent_snapshot=consistent)
    c = make_client(r)
    add_and_release(r.sim, "app/tool.bin", APP)  # targets, snapshot, timestamp v2

    c.ok(c.refresh())
    assert c.trusted() == top(1, 2, 2, 2)
    v = (lambda n, role: f"/metadata/{n}.{role}.json") if consistent else (lambda n, role: f"/metadata/{role}.json")
    assert r.server.fetched() == [
        "/metadata/2.root.json", "/metadata/timestamp.json", v(2, "snapshot"), v(2, "targets"),
    ], c.describe()

    r.server.clear_log()
    c.ok(c.download("app/tool.bin"))
    assert c.downloaded() == {"app%2Ftool.bin": APP}
    want_url = r.sim.target_url_path("app/tool.bin")
    assert want_url == (f"/targets/app/{r.sim.find_target('app/tool.bin').hashes['sha256']}.tool.bin"
                        if consistent else "/targets/app/tool.bin")
    # Unchanged snapshot and targets are read from the metadata dir, not fetched again.
    assert r.server.fetched() == ["/metadata/2.root.json", "/metadata/timestamp.json", want_url], c.describe()

    # Cached with matching hashes: not downloaded again.
    r.server.clear_log()
    c.ok(c.download("app/tool.bin"))
    assert target_fetches(r.server) == [], c.describe()

    # New content under the same name replaces the file in place.
    add_and_release(r.sim, "app/tool.bin", APP2)
    r.server.clear_log()
    c.ok(c.download("app/tool.bin"))
    assert c.downloaded() == {"app%2Ftool.bin": APP2}
    assert target_fetches(r.server) == [r.sim.target_url_path("app/tool.bin")], c.describe()
    assert c.trusted() == top(1, 3, 3, 3)


def test_root_rotation_chain_with_old_and_new_thresholds(repo, client):
    """1 -> 2 -> 3, each new root signed by a threshold of the previous keys and of its own."""
    sim = repo.sim
    (a,) = sim.authorised_signers(Root.type)
    # v2: keys B, C, threshold 2; signed by A (old threshold 1) and B, C (new threshold 2).
    b, c_ = sim.add_key(Root.type), sim.add_key(Root.type)
    sim.revoke_key(Root.type, a.public_key.keyid)
    sim.set_threshold(Root.type, 2)
    sim.publish(Root.type, signers=[a, b, c_])
    # v3: keys D, E, F, threshold 2; signed by B, C (old 2 of 2) and D, E (new 2 of 3).
    d, e, _f = (sim.add_key(Root.type) for _ in range(3))
    for old in (b, c_):
        sim.revoke_key(Root.type, old.public_key.keyid)
    # ... and the timestamp key rotates with it.
    sim.rotate_keys(Timestamp.type)
    v3 = sim.publish(Root.type, signers=[b, c_, d, e])
    sim.release()  # snapshot v2, timestamp v2 signed by the new timestamp key

    client.ok(client.refresh())
    assert client.trusted() == top(3, 2, 2, 1)
    assert (client.metadata_dir / "root.json").read_bytes() == v3
    assert metadata_fetches(repo.server)[:3] == [
        "/metadata/2.root.json", "/metadata/3.root.json", "/metadata/4.root.json",
    ], client.describe()


def test_root_rotation_refused_without_new_threshold(repo, client):
    """A new root must also meet its own threshold: 1 of 2 new keys is not enough."""
    sim = repo.sim
    (a,) = sim.authorised_signers(Root.type)
    b, _c = sim.add_key(Root.type), sim.add_key(Root.type)
    sim.revoke_key(Root.type, a.public_key.keyid)
    sim.set_threshold(Root.type, 2)
    sim.publish(Root.type, signers=[a, b])

    client.failed(client.refresh(), "UnsignedMetadataError")
    assert client.trusted() == top(1)
    assert repo.server.fetched() == ["/metadata/2.root.json"], client.describe()


def test_delegations_preorder_and_terminating(repo, client):
    """Pre-order depth-first search in listed order; a terminating match ends the search."""
    sim = repo.sim
    sim.delegate(Targets.type, "a", paths=["pkg/*"])
    sim.delegate("a", "a1", paths=["pkg/*"])
    sim.delegate(Targets.type, "b", paths=["pkg/*"], terminating=True)
    sim.delegate(Targets.type, "c", paths=["pkg/*"])
    sim.add_target("pkg/x", b"x from a1\n", "a1")
    sim.add_target("pkg/x", b"x from b\n", "b")
    sim.add_target("pkg/y", b"y from b\n", "b")
    sim.add_target("pkg/y", b"y from c\n", "c")
    sim.add_target("pkg/z", b"z from c\n", "c")
    sim.release(Targets.type, "a", "a1", "b", "c")

    client.ok(client.download("pkg/x"))
    assert client.downloaded() == {"pkg%2Fx": b"x from a1\n"}
    assert metadata_fetches(repo.server)[-2:] == ["/metadata/1.a.json", "/metadata/1.a1.json"], client.describe()

    repo.server.clear_log()
    client.ok(client.download("pkg/y"))
    assert client.downloaded()["pkg%2Fy"] == b"y from b\n"
    assert "/metadata/1.b.json" in repo.server.fetched(), client.describe()

    repo.server.clear_log()
    client.failed(client.download("pkg/z"), "LookupError")  # only in c, which b (terminating) cuts off
    assert "pkg%2Fz" not in client.downloaded()
    assert "/metadata/1.c.json" not in repo.server.fetched(), client.describe()
    assert client.trusted() == top(1, 2, 2, 2, a=1, a1=1, b=1)


def test_hashed_bins(repo, client):
    """16 bins by sha256(path) prefix: exactly the target's bin is fetched."""
    sim = repo.sim
    bins = [f"bin-{i:x}" for i in range(16)]
    shared = sim.new_signer()
    for i, name in enumerate(bins):
        sim.delegate(Targets.type, name, path_hash_prefixes=[f"{i:x}"], keys=0)
        sim.add_key(name, shared)
    names = ["bulk/one.bin", "bulk/two.bin", "frames/f001.png"]
    for n in names:
        b = f"bin-{hashlib.sha256(n.encode()).hexdigest()[0]}"
        sim.add_target(n, f"{n} in {b}\n".encode(), b)
    sim.release(Targets.type, *bins)

    want_bin = f"bin-{hashlib.sha256(b'frames/f001.png').hexdigest()[0]}"
    client.ok(client.download("frames/f001.png"))
    assert client.downloaded() == {"frames%2Ff001.png": f"frames/f001.png in {want_bin}\n".encode()}
    delegated = [p for p in metadata_fetches(repo.server) if p.split(".")[1].startswith("bin-")]
    assert delegated == [f"/metadata/1.{want_bin}.json"], client.describe()


def test_hashed_bins_succinct(repo, client):
    """TAP 15 succinct bins (8, named ``bins-0`` .. ``bins-7``): the bin is the hash's top 3 bits."""
    sim = repo.sim
    names = sim.delegate_succinct(Targets.type, bit_length=3, name_prefix="bins")
    path = "frames/f002.png"
    want_bin = f"bins-{hashlib.sha256(path.encode()).digest()[0] >> 5:x}"
    assert want_bin in names
    sim.add_target(path, b"frame two\n", want_bin)
    sim.release(Targets.type, *names)

    client.ok(client.download(path))
    assert client.downloaded() == {"frames%2Ff002.png": b"frame two\n"}
    delegated = [p for p in metadata_fetches(repo.server) if p.split(".")[1].startswith("bins-")]
    assert delegated == [f"/metadata/1.{want_bin}.json"], client.describe()


def test_names_that_need_quoting(repo, client):
    """Role ``ops/release%1``; targets ``dir/file with space``, ``a/../b``, ``päth/ü~x``: quoted, contained.

    The target URL is ``<base>/<dirname>/<sha256>.<basename>`` with the
    name's characters percent-encoded as a URL needs; python-tuf (urllib3)
    also resolves ``a/../`` before sending, so the server compares normalised
    paths.  Metadata and target *file* names are fully quoted (``/`` too).
    """
    sim = repo.sim
    role = "ops/release%1"
    sim.delegate(Targets.type, role, paths=["*/*", "*/*/*"])
    sim.add_target("dir/file with space", b"spaced\n", role)
    sim.add_target("a/../b", b"dotted\n", role)
    sim.add_target("päth/ü~x", b"utf-8\n", role)
    sim.release(Targets.type, role)

    client.ok(client.download("dir/file with space"))
    assert client.downloaded() == {"dir%2Ffile%20with%20space": b"spaced\n"}
    assert f"/metadata/1.{quote_role(role)}.json" == "/metadata/1.ops%2Frelease%251.json"
    assert "/metadata/1.ops%2Frelease%251.json" in repo.server.fetched(), client.describe()
    assert (client.metadata_dir / "ops%2Frelease%251.json").is_file(), sorted(
        p.name for p in client.metadata_dir.iterdir())
    assert repo.sim.target_url_path("dir/file with space") in target_fetches(repo.server)

    client.ok(client.download("a/../b"))
    assert repo.sim.target_url_path("a/../b") in target_fetches(repo.server), client.describe()
    outside = [p.name for p in client.target_dir.parent.iterdir() if p.name in ("b", "a")]
    assert outside == [], f"a download escaped the target dir: {outside}"

    # Quoting is urllib.parse.quote(name, safe=""): UTF-8 escaped, "~" left alone.
    client.ok(client.download("päth/ü~x"))
    assert client.downloaded() == {
        "dir%2Ffile%20with%20space": b"spaced\n",
        "a%2F..%2Fb": b"dotted\n",
        "p%C3%A4th%2F%C3%BC~x": b"utf-8\n",
    }
    assert client.trusted() == top(1, 2, 2, 2, **{role: 1})


# --- the simulator itself --------------------------------------------------


def test_simulator_normalises_request_paths():
    """Equivalent spellings of one URL must hit the same file, distinct ones must not.

    The quoting test relies on this: clients may escape ``~`` or not, use
    lower-case hex, or leave ``..`` for the server; an escaped ``/`` inside a
    role name, or ``+`` for a space, are different URLs.
    """
    from tuf_repo_sim import normalize_path

    assert normalize_path("/targets/a/../h.b") == "/targets/h.b"
    assert normalize_path("/targets/./x/%2e%2E/h.b?q=1") == "/targets/h.b"
    assert normalize_path("/targets/p%c3%a4th/%7Ex") == "/targets/p%C3%A4th/~x"
    assert normalize_path("/metadata/1.ops%2frelease%251.json") == "/metadata/1.ops%2Frelease%251.json"
    assert normalize_path("/targets/file with space") == "/targets/file%20with%20space"
    assert normalize_path("/targets/file+with+space") != normalize_path("/targets/file%20with%20space")
