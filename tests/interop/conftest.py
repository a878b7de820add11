"""Fixtures for the swarmdrop interop suite (helpers live in ``sd_interop``).

Everything talks to the real ``swarmdrop`` binary (``SWARMDROP_BIN``, default
``target/debug/swarmdrop``) and to independent third-party implementations
(python-tuf, securesystemslib, libtorrent).  Only loopback addresses are used;
every HTTP server binds ``127.0.0.1`` port 0.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sd_interop import (  # noqa: E402
    StaticServer,
    Swarmdrop,
    bin_path,
    make_drop_dir,
    start_static_server,
)


@pytest.fixture(autouse=True, scope="session")
def _quiet_logging() -> None:
    for name in ("tuf", "securesystemslib", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)


@pytest.fixture(scope="session")
def swarmdrop_bin() -> Path:
    path = bin_path()
    if not path.is_file():
        pytest.fail(
            f"swarmdrop binary not found at {path}. Build it with "
            "`cargo build --bin swarmdrop` or point SWARMDROP_BIN at it.",
            pytrace=False,
        )
    if not os.access(path, os.X_OK):
        pytest.fail(f"swarmdrop binary at {path} is not executable", pytrace=False)
    return path


@pytest.fixture(scope="session")
def swarmdrop(swarmdrop_bin: Path) -> Swarmdrop:
    return Swarmdrop(swarmdrop_bin)


@pytest.fixture(scope="session")
def keydir(swarmdrop: Swarmdrop, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One keygen'd key directory shared (read-only) by the whole session."""
    d = tmp_path_factory.mktemp("keys") / "keys"
    swarmdrop.keygen(d)
    return d


@pytest.fixture(scope="session")
def pristine_drop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Session-wide drop dir; tests must not modify it (use ``drop_dir``)."""
    return make_drop_dir(tmp_path_factory.mktemp("pristine") / "drop")


@pytest.fixture
def drop_dir(pristine_drop: Path, tmp_path: Path) -> Path:
    """A private, writable copy of the drop for one test."""
    dest = tmp_path / "drop"
    shutil.copytree(pristine_drop, dest)
    return dest


@pytest.fixture(scope="session")
def pristine_published(
    swarmdrop: Swarmdrop,
    keydir: Path,
    pristine_drop: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """A PUBLISHED tree packed once per session; tests must not modify it."""
    out = tmp_path_factory.mktemp("published") / "published"
    swarmdrop.pack(pristine_drop, keydir, out)
    return out


@pytest.fixture
def published(pristine_published: Path, tmp_path: Path) -> Path:
    """A private, writable copy of the session PUBLISHED tree."""
    dest = tmp_path / "published"
    shutil.copytree(pristine_published, dest)
    return dest


@pytest.fixture
def static_server() -> Iterator[Callable[[Path], StaticServer]]:
    """Factory fixture: ``static_server(dir)`` serves ``dir`` on 127.0.0.1:<ephemeral>."""
    servers: list[StaticServer] = []

    def _start(root: Path) -> StaticServer:
        s = start_static_server(root)
        servers.append(s)
        return s

    yield _start
    for s in servers:
        s.close()
