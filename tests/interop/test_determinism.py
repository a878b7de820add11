"""`swarmdrop pack` is reproducible: same inputs, keys and SOURCE_DATE_EPOCH give identical bytes."""

from __future__ import annotations

import shutil
from pathlib import Path

from sd_interop import make_drop_dir

SDE = 1_700_000_000  # fixed clock; expiries are long enough not to matter here
EXTRA = (
    "--tracker", "http://127.0.0.1:9/announce",
    "--webseed", "http://127.0.0.1:11/",
)


def tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def assert_same_tree(a: Path, b: Path) -> None:
    ta, tb = tree(a), tree(b)
    assert ta, f"{a} is empty"
    assert set(ta) == set(tb), (
        f"file sets differ:\n  only in {a.name}: {sorted(set(ta) - set(tb))}\n"
        f"  only in {b.name}: {sorted(set(tb) - set(ta))}"
    )
    differing = sorted(name for name in ta if ta[name] != tb[name])
    assert not differing, f"{len(differing)} file(s) differ between runs: {differing}"


def pack_at_fixed_clock(swarmdrop, drop: Path, keydir: Path, out: Path) -> None:
    # Expiries relative to a 2023 clock: long ones keep nothing interesting from depending on them.
    swarmdrop.pack(
        drop, keydir, out, *EXTRA,
        source_date_epoch=SDE,
        expiries=("--expires-timestamp", "1d", "--expires-snapshot", "7d",
                  "--expires-targets", "30d", "--expires-root", "365d"),
    )


def test_two_packs_are_byte_identical(swarmdrop, keydir, pristine_drop, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    pack_at_fixed_clock(swarmdrop, pristine_drop, keydir, a)
    pack_at_fixed_clock(swarmdrop, pristine_drop, keydir, b)
    assert_same_tree(a, b)


def test_pack_does_not_depend_on_drop_location(swarmdrop, keydir, pristine_drop, tmp_path):
    """A byte-identical drop at another path (e.g. another checkout) publishes the same bytes."""
    elsewhere = tmp_path / "some" / "other" / "place"
    elsewhere.parent.mkdir(parents=True)
    shutil.copytree(pristine_drop, elsewhere)
    a, b = tmp_path / "a", tmp_path / "b"
    pack_at_fixed_clock(swarmdrop, pristine_drop, keydir, a)
    pack_at_fixed_clock(swarmdrop, elsewhere, keydir, b)
    assert_same_tree(a, b)


def test_make_bulk_is_deterministic(pristine_drop, tmp_path):
    again = make_drop_dir(tmp_path / "drop")
    rel = "bulk/patch-1.0.bin"
    assert (again / rel).read_bytes() == (pristine_drop / rel).read_bytes(), "make-bulk.sh output is not deterministic"
