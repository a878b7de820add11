"""The harness for the ``swarmdrop tuf-client`` tests, shared by ``test_tuf_attacks.py`` and ``test_tuf_workflow.py``.

Issue 8 makes ``swarmdrop tuf-client`` a complete TUF 1.0 client behind the
tuf-conformance client CLI (``init`` / ``refresh`` / ``download``).  Every
scenario runs twice, through the parametrized ``tuf_client`` fixture: against
``$SWARMDROP_BIN tuf-client`` and against ``tuf_reference_client.py``
(python-tuf's ngclient behind the same CLI).  The reference run proves the
scenario itself is right; where python-tuf knowingly deviates from the
specification the python-tuf run is a strict xfail naming the gap
(``known_python_tuf_gap``).  ``-k python-tuf`` runs the reference half alone;
the swarmdrop half fails (never skips) if the binary has no ``tuf-client``
subcommand.

What a client can be seen to have done is what the tests check: the exit code
(exactly 1 on failure, per the contract; ``Client.failed`` also checks
python-tuf's exception class), the roles and versions it trusts in its
metadata dir (``Client.trusted``), the files in its target dir
(``Client.downloaded``) and the URLs it requested (``metadata_fetches``,
``target_fetches``).  Repositories are forged byte by byte with
``tuf_repo_sim``.

The fixtures (``tuf_client``, ``make_repo``, ``repo``, ``make_client``,
``client``) are defined here rather than in ``conftest.py`` so that only the
TUF client modules see them; each imports them by name.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator
from urllib import parse

import pytest
from tuf.api.metadata import Root, Snapshot, Targets, Timestamp

from sd_interop import base_env, bin_path
from tuf_repo_sim import RepositorySimulator, SimulatorServer

HERE = Path(__file__).resolve().parent
REFERENCE_CLIENT = HERE / "tuf_reference_client.py"
CLIENT_TIMEOUT_S = 60.0

ClientRun = Callable[..., subprocess.CompletedProcess]


# --- the client under test -------------------------------------------------


@functools.cache
def _swarmdrop_tuf_client_problem() -> str | None:
    """Why ``$SWARMDROP_BIN tuf-client`` cannot run, or None (probed once per session)."""
    path = bin_path()
    if not path.is_file():
        return (
            f"swarmdrop binary not found at {path}. Build it with `cargo build --bin swarmdrop` "
            "or point SWARMDROP_BIN at it (run only the reference half with -k python-tuf)."
        )
    proc = subprocess.run(
        [str(path), "tuf-client", "--help"],
        capture_output=True, text=True, timeout=CLIENT_TIMEOUT_S, stdin=subprocess.DEVNULL, env=base_env(),
    )
    if proc.returncode != 0:
        return (
            f"`{path} tuf-client --help` exited {proc.returncode}: the binary has no `tuf-client` "
            f"subcommand yet (issue 8).\n--- stderr ---\n{proc.stderr}"
        )
    return None


@pytest.fixture(params=["swarmdrop", "python-tuf"])
def tuf_client(request: pytest.FixtureRequest) -> ClientRun:
    """``client(*args, timeout=...) -> CompletedProcess`` for one implementation of the CLI."""
    if request.param == "swarmdrop":
        problem = _swarmdrop_tuf_client_problem()
        if problem:
            pytest.fail(problem, pytrace=False)
        argv0 = [str(bin_path()), "tuf-client"]
    else:
        argv0 = [sys.executable, str(REFERENCE_CLIENT)]

    def run(*args: object, timeout: float = CLIENT_TIMEOUT_S) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*argv0, *map(str, args)],
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, env=base_env(),
        )

    run.impl = request.param  # type: ignore[attr-defined]
    return run


@dataclass
class Client:
    """One client installation (metadata dir + target dir) driven through the CLI."""

    run: ClientRun
    metadata_dir: Path
    target_dir: Path
    server: SimulatorServer
    last: subprocess.CompletedProcess | None = None

    @property
    def impl(self) -> str:
        return self.run.impl  # type: ignore[attr-defined]

    def init(self, root: bytes) -> subprocess.CompletedProcess:
        root_file = self.metadata_dir.parent / f"{self.metadata_dir.name}-initial-root.json"
        root_file.write_bytes(root)
        return self._run("--metadata-dir", self.metadata_dir, "init", root_file)

    def refresh(self, server: SimulatorServer | None = None, **kw: float) -> subprocess.CompletedProcess:
        srv = server or self.server
        return self._run("--metadata-dir", self.metadata_dir, "--metadata-url", srv.metadata_url, "refresh", **kw)

    def download(
        self,
        name: str,
        *,
        server: SimulatorServer | None = None,
        mirror: SimulatorServer | None = None,
        **kw: float,
    ) -> subprocess.CompletedProcess:
        """Download ``name``: metadata from ``server``, target bytes from ``mirror`` (default: same)."""
        srv = server or self.server
        return self._run(
            "--metadata-dir", self.metadata_dir,
            "--metadata-url", srv.metadata_url,
            "--target-name", name,
            "--target-base-url", (mirror or srv).targets_url,
            "--target-dir", self.target_dir,
            "download",
            **kw,
        )

    def _run(self, *args: object, timeout: float = CLIENT_TIMEOUT_S) -> subprocess.CompletedProcess:
        self.last = self.run(*args, timeout=timeout)
        return self.last

    # ----- observable state ----------------------------------------------------

    def trusted(self) -> dict[str, int]:
        """``{role: version}`` of every ``*.json`` in the metadata dir (names unquoted)."""
        out: dict[str, int] = {}
        for p in sorted(self.metadata_dir.glob("*.json")):
            role = parse.unquote(p.name[: -len(".json")])
            doc = json.loads(p.read_bytes())
            assert isinstance(doc, dict) and "signed" in doc, (
                f"{p.name} in the metadata dir is not TUF metadata; the contract keeps only "
                "root.json, timestamp.json, snapshot.json, targets.json and <quoted role>.json there"
            )
            signed = doc["signed"]
            expected_type = role if role in (Root.type, Timestamp.type, Snapshot.type) else Targets.type
            assert signed["_type"] == expected_type, f"{p.name} holds {signed['_type']!r} metadata"
            out[role] = signed["version"]
        return out

    def downloaded(self) -> dict[str, bytes]:
        """Every file under the target dir, by path relative to it."""
        return {
            p.relative_to(self.target_dir).as_posix(): p.read_bytes()
            for p in sorted(self.target_dir.rglob("*"))
            if p.is_file()
        }

    def describe(self, proc: subprocess.CompletedProcess | None = None) -> str:
        proc = proc or self.last
        assert proc is not None
        fetched = "\n".join(f"  {r.status} {r.raw}" for r in self.server.requests())
        return (
            f"client: {self.impl}\ncommand: {' '.join(map(str, proc.args))}\nexit code: {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}\n"
            f"--- requests to {self.server.url} ---\n{fetched}"
        )

    def ok(self, proc: subprocess.CompletedProcess) -> None:
        assert proc.returncode == 0, "expected success\n" + self.describe(proc)

    def failed(self, proc: subprocess.CompletedProcess, because: str) -> None:
        """Exit code 1; for python-tuf also the exception class ``because`` (the intended refusal).

        Checking the reference's reason keeps a scenario from passing on an
        accident (a typo'd URL, an unrelated expiry) instead of the attack.
        """
        assert proc.returncode == 1, "expected exit code 1 (refused)\n" + self.describe(proc)
        if self.impl == "python-tuf":
            assert f": {because}:" in proc.stderr, f"python-tuf refused, but not with {because}\n" + self.describe(proc)


@dataclass
class Repo:
    sim: RepositorySimulator
    server: SimulatorServer
    extra: list[SimulatorServer] = field(default_factory=list)

    def mirror(self) -> SimulatorServer:
        """A second server for the same repository (its overrides are its own)."""
        srv = SimulatorServer(self.sim)
        self.extra.append(srv)
        return srv


@pytest.fixture
def make_repo() -> Iterator[Callable[..., Repo]]:
    repos: list[Repo] = []

    def make(**kw: object) -> Repo:
        sim = RepositorySimulator(**kw)  # type: ignore[arg-type]
        repo = Repo(sim, SimulatorServer(sim))
        repos.append(repo)
        return repo

    yield make
    for r in repos:
        for s in [r.server, *r.extra]:
            s.close()


@pytest.fixture
def repo(make_repo: Callable[..., Repo]) -> Repo:
    """A consistent-snapshot repository: root, targets, snapshot, timestamp all v1."""
    return make_repo()


@pytest.fixture
def make_client(tuf_client: ClientRun, tmp_path: Path) -> Callable[[Repo], Client]:
    """``make_client(repo)``: a client initialised with the repository's 1.root.json."""

    def make(r: Repo) -> Client:
        n = len(list(tmp_path.glob("metadata*")))
        c = Client(tuf_client, tmp_path / f"metadata{n}", tmp_path / f"targets{n}", r.server)
        c.metadata_dir.mkdir()
        c.target_dir.mkdir()
        root = r.sim.published_file(Root.type, 1)
        before = len(r.server.requests())
        c.ok(c.init(root))
        assert (c.metadata_dir / "root.json").read_bytes() == root, "init must trust ROOT as root.json"
        assert len(r.server.requests()) == before, "init must not touch the network"
        r.server.clear_log()
        return c

    return make


@pytest.fixture
def client(make_client: Callable[[Repo], Client], repo: Repo) -> Client:
    return make_client(repo)


def known_python_tuf_gap(request: pytest.FixtureRequest, client: Client, reason: str) -> None:
    """Mark the python-tuf run a strict xfail: the scenario is right, python-tuf is not."""
    if client.impl == "python-tuf":
        request.applymarker(pytest.mark.xfail(reason=f"known python-tuf gap: {reason}", strict=True))


def metadata_fetches(server: SimulatorServer) -> list[str]:
    return [p for p in server.fetched() if p.startswith("/metadata/")]


def target_fetches(server: SimulatorServer) -> list[str]:
    return [p for p in server.fetched() if p.startswith("/targets/")]


def top(root: int = 1, timestamp: int | None = None, snapshot: int | None = None,
        targets: int | None = None, **delegated: int) -> dict[str, int]:
    """Expected ``Client.trusted()``: only the roles given."""
    out = {Root.type: root, Timestamp.type: timestamp, Snapshot.type: snapshot, Targets.type: targets}
    return {k: v for k, v in {**out, **delegated}.items() if v is not None}


def add_and_release(sim: RepositorySimulator, path: str, data: bytes, role: str = Targets.type) -> None:
    sim.add_target(path, data, role)
    sim.release(role)


APP = b"swarmdrop tuf attack suite: the genuine application, version 1\n"
APP2 = b"swarmdrop tuf attack suite: the genuine application, version 2 (longer)\n"
EVIL = b"swarmdrop tuf attack suite: MALICIOUS payload that must never land\n"
