"""A bulk class with ``spare_edges = true``: ``swarmdrop get`` takes the bulk asset from a
seeder and, at once, from a real edge (``swarmdrop edge``) acting as a web seed. Both
carry part of it, the origin none, every file matches its signed target, and each piece
the edge took is logged with its reason (``spare_capacity``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_support import Origin, Published, start_edge
from sd_interop import EXAMPLE_POLICY
from test_client import assert_every_target_matches, get, start_published_seed


@pytest.fixture(scope="module")
def spare_pub(swarmdrop, keydir, pristine_drop, tmp_path_factory) -> Published:
    """The example drop packed with the bulk class's ``spare_edges`` on."""
    work = tmp_path_factory.mktemp("spare")
    policy = work / "drop.toml"
    text = EXAMPLE_POLICY.read_text()
    bulk_paths = 'name = "bulk"\nbudget_ms = 60000\npaths = ["p2p", "edge", "origin"]\n'
    assert bulk_paths in text, "the example policy's bulk class changed"
    policy.write_text(text.replace(bulk_paths, bulk_paths + "spare_edges = true\n"))
    out = work / "published"
    swarmdrop.pack(pristine_drop, keydir, out, policy=policy)
    return Published.load(out, pristine_drop)


def test_an_edge_seeds_the_bulk_beside_the_swarm(swarmdrop_bin, spare_pub, tmp_path):
    pub = spare_pub
    bulk = pub.of_class("bulk")
    assert all(pub.targets[p]["custom"].get("spare_edges") is True for p in bulk)
    assert all("spare_edges" not in pub.targets[p]["custom"] for p in pub.of_class("checkout"))
    origin = Origin(pub.root)
    edge = start_edge(swarmdrop_bin, origin=origin.url, cache_dir=tmp_path / "cache", root=pub.root_json,
                      log_path=tmp_path / "edge.stderr")
    seed, addr = start_published_seed(swarmdrop_bin, pub.root, "127.0.0.91")
    try:
        out, events = tmp_path / "out", tmp_path / "events.jsonl"
        report, _ = get(swarmdrop_bin, origin.url, out, "--edge", edge.base, "--root", str(pub.root_json),
                        "--peer", addr, "--listen", "127.0.0.92:0", "--no-trackers", "--events", str(events))
    finally:
        seed.terminate()
        seed.wait(timeout=10)
        edge.close()
        origin.stop()
    assert_every_target_matches(pub, out)
    by_path = report["classes"]["bulk"]["bytes_by_path"]
    size = sum(pub.length(p) for p in bulk)
    assert by_path.get("p2p", 0) > 0 and by_path.get("edge0", 0) > 0, by_path
    assert by_path.get("p2p", 0) + by_path.get("edge0", 0) == size, by_path
    assert report["bytes_by_path"].get("origin", 0) == 0, report["bytes_by_path"]
    decisions = [json.loads(line) for line in events.read_text().splitlines()]
    spare = [d for d in decisions if d.get("reason") == "spare_capacity"]
    assert spare, "no piece was taken from the edge as spare capacity"
    assert all(d["decision"] == "fetch" and d["asset_path"] in bulk and d["path"]["kind"] == "edge"
               for d in spare), spare[:3]


def test_a_class_without_the_swarm_first_refuses_spare_edges(swarmdrop, keydir, pristine_drop, tmp_path):
    text = EXAMPLE_POLICY.read_text().replace(
        'paths = ["edge", "p2p", "origin"]\n', 'paths = ["edge", "p2p", "origin"]\nspare_edges = true\n')
    policy = tmp_path / "drop.toml"
    policy.write_text(text)
    proc = swarmdrop.pack(pristine_drop, keydir, tmp_path / "published", policy=policy, check=False)
    assert proc.returncode != 0
    assert "spare_edges needs paths that start with \"p2p\"" in proc.stderr, proc.stderr
    assert "class[1].spare_edges" in proc.stderr, proc.stderr
