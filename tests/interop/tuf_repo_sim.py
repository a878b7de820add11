"""An in-memory TUF 1.0 repository, served over loopback HTTP, that tests can corrupt.

``test_tuf_attacks.py`` and ``test_tuf_workflow.py`` need a repository they control byte by byte: sign
metadata with any key (or none), publish old versions next to new ones, lie
about a single file, answer a download with an endless stream.  A static
directory cannot do that, and swarmdrop's own ``pack`` must not be the only
producer of the metadata its client trusts (the two could share a bug).  So
the metadata here is built with python-tuf's Metadata API and signed with
securesystemslib signers: an independent implementation of the file formats.

The model is a publishing repository.  :class:`RepositorySimulator` holds the
current metadata of every role in memory; :meth:`RepositorySimulator.publish`
signs one role and stores the bytes under the URL path a TUF client asks for
(``/metadata/3.targets.json`` with consistent snapshots, ``/metadata/targets.json``
without).  Older versions stay published, as on a real consistent-snapshot
repository, which is exactly what rollback and mix-and-match attacks replay.
:class:`SimulatorServer` serves those bytes on ``127.0.0.1`` port 0, records
every request path, and lets a test override any path with arbitrary bytes, a
status code or an endless body.  Several servers may serve one simulator, which
is how a malicious mirror sits next to an honest one.
"""

from __future__ import annotations

import copy
import hashlib
import http.server
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Iterable
from urllib import parse

from securesystemslib.signer import CryptoSigner, Signer
from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    Metadata,
    MetaFile,
    Role,
    Root,
    Snapshot,
    SuccinctRoles,
    TargetFile,
    Targets,
    Timestamp,
)

TOP_LEVEL_ROLES = (Root.type, Timestamp.type, Snapshot.type, Targets.type)
DEFAULT_LIFETIME = timedelta(days=30)


def quote_role(role: str) -> str:
    """Role name as it appears in metadata file names (what ngclient does: no safe chars)."""
    return parse.quote(role, safe="")


def utc_now() -> datetime:
    """Now, in UTC, to the second (TUF expiry has no sub-second part)."""
    return datetime.now(timezone.utc).replace(microsecond=0)


# --------------------------------------------------------------------------
# URL paths
# --------------------------------------------------------------------------

_UNRESERVED = re.compile(r"[A-Za-z0-9\-._~]")
_PCT = re.compile(r"%([0-9A-Fa-f]{2})")


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4, so ``/targets/a/../x`` and ``/targets/x`` compare equal."""
    out: list[str] = []
    segments = path.split("/")
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg == ".":
            if last:
                out.append("")
        elif seg == "..":
            if len(out) > 1:
                out.pop()
            if last:
                out.append("")
        else:
            out.append(seg)
    return "/".join(out)


def normalize_path(raw: str) -> str:
    """Canonical form of a request path, so equivalent spellings of one URL match.

    Clients may percent-encode differently (``~`` or ``%7E``, ``%2f`` or ``%2F``)
    and urllib3 resolves ``..`` before sending while other HTTP stacks may not.
    This applies RFC 3986 normalisation: decode escapes of unreserved
    characters, upper-case the rest, escape anything that is not printable
    ASCII, then remove dot segments.  ``%2F`` stays ``%2F``: an escaped slash
    inside a role name is not a path separator.
    """
    path = raw.split("?", 1)[0].split("#", 1)[0]

    def unescape(m: re.Match[str]) -> str:
        ch = chr(int(m.group(1), 16))
        return ch if _UNRESERVED.fullmatch(ch) else "%" + m.group(1).upper()

    path = _PCT.sub(unescape, path)
    # http.server decodes the request line as latin-1: re-escape raw bytes.
    path = "".join(
        c if 0x21 <= ord(c) < 0x7F else "".join(f"%{b:02X}" for b in c.encode("latin-1"))
        for c in path
    )
    return _remove_dot_segments(path)


def url_path_for(path: str) -> str:
    """Normalised request path for an unescaped path such as ``/targets/dir/a b``."""
    return normalize_path(parse.quote(path, safe="/"))


# --------------------------------------------------------------------------
# the repository
# --------------------------------------------------------------------------


class RepositorySimulator:
    """A TUF repository in memory: current metadata per role plus everything published.

    Attributes tests touch directly:

    * ``root``, ``timestamp``, ``snapshot``, ``targets`` and ``delegates[name]``:
      the current, unpublished ``Metadata`` objects.  Mutate ``.signed`` freely,
      then :meth:`publish` (or :meth:`release`) to make the change visible.
    * ``signers[role][keyid]``: every private key the simulator holds for a
      role, including retired ones (so a test can sign with a revoked key).
    * ``files``: published bytes by normalised URL path.  Prefer
      :meth:`SimulatorServer.override` for one-off lies; it leaves the honest
      repository intact for the next step of the test.
    """

    def __init__(
        self,
        *,
        consistent_snapshot: bool = True,
        meta_hashes: bool = False,
        lifetime: timedelta = DEFAULT_LIFETIME,
    ) -> None:
        self.consistent_snapshot = consistent_snapshot
        # With meta_hashes the snapshot (in timestamp) and targets roles (in
        # snapshot) are pinned by length and sha256, not just by version.
        self.meta_hashes = meta_hashes
        self.lifetime = lifetime
        self.signers: dict[str, dict[str, Signer]] = {}
        self.files: dict[str, bytes] = {}
        self.target_data: dict[str, bytes] = {}
        self.delegates: dict[str, Metadata[Targets]] = {}
        self._delegator: dict[str, str] = {}
        # Latest published version and bytes per role (snapshot meta is built from these).
        self.published: dict[str, int] = {}
        self.published_bytes: dict[str, bytes] = {}
        # Root keyids of the newest published root: the next root is signed by them too.
        self._prev_root_keyids: list[str] | None = None

        expires = utc_now() + lifetime
        self.root: Metadata[Root] = Metadata(Root(expires=expires, consistent_snapshot=consistent_snapshot))
        self.timestamp: Metadata[Timestamp] = Metadata(Timestamp(expires=expires))
        self.snapshot: Metadata[Snapshot] = Metadata(Snapshot(expires=expires))
        self.targets: Metadata[Targets] = Metadata(Targets(expires=expires))
        for role in TOP_LEVEL_ROLES:
            self.add_key(role)
        self.publish(Root.type, bump=False)
        self.release(Targets.type, bump=False)

    # ----- keys -------------------------------------------------------------

    @staticmethod
    def new_signer() -> CryptoSigner:
        return CryptoSigner.generate_ed25519()

    def add_key(self, role: str, signer: Signer | None = None) -> Signer:
        """Authorise a (new) key for ``role`` in its delegator; remember the private key."""
        signer = signer or self.new_signer()
        key = signer.public_key
        delegator = self.delegator_of(role)
        delegator.signed.add_key(key, role)
        self.signers.setdefault(role, {})[key.keyid] = signer
        return signer

    def revoke_key(self, role: str, keyid: str) -> None:
        """Remove ``keyid`` from ``role`` in its delegator (the private key is kept)."""
        self.delegator_of(role).signed.revoke_key(keyid, role)

    def rotate_keys(self, role: str) -> Signer:
        """Replace every key of ``role`` with one fresh key (threshold becomes 1)."""
        for keyid in list(self.role_keyids(role)):
            self.revoke_key(role, keyid)
        self.set_threshold(role, 1)
        return self.add_key(role)

    def set_threshold(self, role: str, threshold: int) -> None:
        self._role_entry(role).threshold = threshold

    def role_keyids(self, role: str) -> list[str]:
        return list(self._role_entry(role).keyids)

    def authorised_signers(self, role: str) -> list[Signer]:
        """Private keys we hold for the keyids ``role``'s delegator currently lists."""
        held = self.signers.get(role, {})
        return [held[k] for k in self.role_keyids(role) if k in held]

    def _role_entry(self, role: str) -> Role:
        """The keyids/threshold entry for ``role`` in its delegator (a DelegatedRole for delegations)."""
        delegator = self.delegator_of(role).signed
        if isinstance(delegator, Root):
            return delegator.roles[role]
        assert delegator.delegations is not None
        if delegator.delegations.succinct_roles is not None:
            return delegator.delegations.succinct_roles  # one entry for every bin
        assert delegator.delegations.roles is not None
        return delegator.delegations.roles[role]

    # ----- roles ------------------------------------------------------------

    def md(self, role: str) -> Metadata:
        """Current (unpublished) metadata of any role."""
        top = {
            Root.type: self.root,
            Timestamp.type: self.timestamp,
            Snapshot.type: self.snapshot,
            Targets.type: self.targets,
        }
        return top[role] if role in top else self.delegates[role]

    def delegator_of(self, role: str) -> Metadata:
        if role in TOP_LEVEL_ROLES:
            return self.root
        return self.md(self._delegator[role])

    def targets_roles(self) -> list[str]:
        return [Targets.type, *self.delegates]

    def delegate(
        self,
        delegator: str,
        name: str,
        *,
        paths: list[str] | None = None,
        path_hash_prefixes: list[str] | None = None,
        terminating: bool = False,
        threshold: int = 1,
        keys: int = 1,
    ) -> DelegatedRole:
        """Add a delegation ``delegator -> name`` with ``keys`` fresh keys, and an empty role.

        Nothing is published: call :meth:`release` with the delegator and ``name``.
        """
        parent = self.md(delegator).signed
        if parent.delegations is None:
            parent.delegations = Delegations(keys={}, roles={})
        assert parent.delegations.roles is not None, "cannot mix with succinct delegations"
        if paths is None and path_hash_prefixes is None:
            paths = ["*"]
        role = DelegatedRole(
            name=name,
            keyids=[],
            threshold=threshold,
            terminating=terminating,
            paths=paths,
            path_hash_prefixes=path_hash_prefixes,
        )
        parent.delegations.roles[name] = role
        self._delegator[name] = delegator
        self.delegates[name] = Metadata(Targets(expires=utc_now() + self.lifetime))
        for _ in range(keys):
            self.add_key(name)
        return role

    def delegate_succinct(self, delegator: str, *, bit_length: int, name_prefix: str) -> list[str]:
        """Replace ``delegator``'s delegations with TAP 15 succinct hash bins; return the bin names.

        All bins share one fresh key (that is what succinct delegation
        expresses); like :meth:`delegate`, nothing is published yet.
        """
        parent = self.md(delegator).signed
        bins = SuccinctRoles(keyids=[], threshold=1, bit_length=bit_length, name_prefix=name_prefix)
        parent.delegations = Delegations(keys={}, roles=None, succinct_roles=bins)
        signer = self.new_signer()
        parent.add_key(signer.public_key)
        names = list(bins.get_roles())
        for name in names:
            self._delegator[name] = delegator
            self.delegates[name] = Metadata(Targets(expires=utc_now() + self.lifetime))
            self.signers.setdefault(name, {})[signer.public_key.keyid] = signer
        return names

    def add_target(self, path: str, data: bytes, role: str = Targets.type) -> TargetFile:
        """List ``path`` in ``role`` and serve ``data`` at its (hash-prefixed) URL at once.

        Target bytes are content-addressed, so serving them before the metadata
        that lists them is what a real repository does too.
        """
        info = TargetFile.from_data(path, data, ["sha256"])
        self.md(role).signed.targets[path] = info
        self.target_data[path] = data
        self.files[self.target_url_path(path, info)] = data
        return info

    def target_url_path(self, path: str, info: TargetFile | None = None) -> str:
        """Normalised URL path a client requests for target ``path``."""
        if self.consistent_snapshot:
            info = info or self.find_target(path)
            assert info is not None, f"no target {path!r} in any role"
            dirname, sep, base = path.rpartition("/")
            return url_path_for(f"/targets/{dirname}{sep}{info.hashes['sha256']}.{base}")
        return url_path_for(f"/targets/{path}")

    def find_target(self, path: str) -> TargetFile | None:
        for role in self.targets_roles():
            info = self.md(role).signed.targets.get(path)
            if info is not None:
                return info
        return None

    # ----- publishing -------------------------------------------------------

    def metadata_path(self, role: str, version: int | None = None) -> str:
        """Normalised URL path of ``role`` metadata (version ignored where TUF uses none)."""
        if role == Root.type:
            assert version is not None
            return url_path_for(f"/metadata/{version}.root.json")
        if role == Timestamp.type or not self.consistent_snapshot:
            return normalize_path(f"/metadata/{quote_role(role)}.json")
        assert version is not None
        return normalize_path(f"/metadata/{version}.{quote_role(role)}.json")

    def sign(self, role: str, signers: Iterable[Signer] | None = None) -> bytes:
        """Replace ``role``'s signatures with ones by ``signers`` (default: its authorised keys)."""
        md = self.md(role)
        if signers is None:
            signers = self._default_signers(role)
        md.signatures.clear()
        for s in signers:
            md.sign(s, append=True)
        return md.to_bytes()

    def _default_signers(self, role: str) -> list[Signer]:
        if role != Root.type or self._prev_root_keyids is None:
            return self.authorised_signers(role)
        # A new root is signed by the old root keys and the new ones (5.3.4).
        held = self.signers.get(Root.type, {})
        keyids = dict.fromkeys([*self._prev_root_keyids, *self.role_keyids(Root.type)])
        return [held[k] for k in keyids if k in held]

    def publish(
        self,
        role: str,
        *,
        bump: bool = True,
        signers: Iterable[Signer] | None = None,
        expires: datetime | None = None,
    ) -> bytes:
        """Bump (unless never published), sign and publish one role; return the published bytes.

        Publishing a role does not update snapshot or timestamp: use
        :meth:`release` for a complete, consistent repository update.
        """
        md = self.md(role)
        if bump and role in self.published:
            md.signed.version += 1
        if expires is not None:
            md.signed.expires = expires
        data = self.sign(role, signers)
        self.put(role, data, md.signed.version)
        if role == Root.type:
            self._prev_root_keyids = self.role_keyids(Root.type)
        return data

    def put(self, role: str, data: bytes, version: int | None = None) -> None:
        """Publish ``data`` as ``role`` version ``version`` without looking inside it."""
        self.files[self.metadata_path(role, version)] = data
        if version is not None:
            # The most recent publication, even a lower version: rollback
            # scenarios want the next snapshot to point at exactly that.
            self.published[role] = version
            self.published_bytes[role] = data

    def repoint(self, role: str, version: int) -> bytes:
        """Make an already published older ``version`` of ``role`` the current one again.

        The next :meth:`refresh_snapshot_meta` / :meth:`refresh_timestamp_meta`
        then points at it: a rollback by someone holding the online keys.
        """
        data = self.files[self.metadata_path(role, version)]
        self.published[role] = version
        self.published_bytes[role] = data
        return data

    def published_file(self, role: str, version: int | None = None) -> bytes:
        """Bytes published for ``role`` (``version`` where the URL is versioned)."""
        return self.files[self.metadata_path(role, version)]

    def _metafile(self, role: str) -> MetaFile:
        version = self.published[role]
        if not self.meta_hashes:
            return MetaFile(version=version)
        data = self.published_bytes[role]
        return MetaFile(version=version, length=len(data), hashes={"sha256": hashlib.sha256(data).hexdigest()})

    def refresh_snapshot_meta(self) -> None:
        """Point snapshot at the latest published version of every published targets role."""
        self.snapshot.signed.meta = {
            f"{role}.json": self._metafile(role) for role in self.targets_roles() if role in self.published
        }

    def refresh_timestamp_meta(self) -> None:
        self.timestamp.signed.snapshot_meta = self._metafile(Snapshot.type)

    def release(self, *roles: str, bump: bool = True) -> None:
        """A repository update: publish ``roles`` (targets roles), then snapshot, then timestamp."""
        for role in roles:
            assert role in self.targets_roles(), f"release() publishes targets roles, not {role!r}"
            self.publish(role, bump=bump)
        self.refresh_snapshot_meta()
        self.publish(Snapshot.type, bump=bump)
        self.refresh_timestamp_meta()
        self.publish(Timestamp.type, bump=bump)

    def copy_md(self, role: str) -> Metadata:
        """Deep copy of a role's current metadata, for later replay."""
        return copy.deepcopy(self.md(role))


# --------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------


@dataclass
class Canned:
    """A response that replaces whatever the repository would serve for one path.

    ``endless`` streams ``body`` (or zero bytes) forever without a
    Content-Length, the endless-data attack; the stream stops when the client
    hangs up, after ``ENDLESS_CAP_BYTES`` or after ``ENDLESS_CAP_S``, so a
    broken client cannot keep the test process busy forever.
    """

    status: int = 200
    body: bytes = b""
    endless: bool = False


ENDLESS_CAP_BYTES = 1 << 30
ENDLESS_CAP_S = 60.0


@dataclass
class Request:
    path: str  # normalised
    raw: str  # as sent on the request line
    status: int
    sent: int = 0  # body bytes written before the response ended or the client left


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_HTTPServer"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        owner = self.server.owner
        path = normalize_path(self.path)
        canned = owner.overrides.get(path)
        if canned is None:
            data = owner.sim.files.get(path)
            canned = Canned(200, data) if data is not None else Canned(404, b"not found\n")
        req = Request(path=path, raw=self.path, status=canned.status)
        with owner.lock:
            owner.log.append(req)
        self.send_response(canned.status)
        if canned.endless:
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            self._stream_endless(req, canned.body or b"\0" * 65536)
            return
        self.send_header("Content-Length", str(len(canned.body)))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        try:
            self.wfile.write(canned.body)
            req.sent = len(canned.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _stream_endless(self, req: Request, chunk: bytes) -> None:
        deadline = time.monotonic() + ENDLESS_CAP_S
        try:
            while req.sent < ENDLESS_CAP_BYTES and time.monotonic() < deadline:
                self.wfile.write(chunk)
                req.sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: "SimulatorServer") -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        # Clients hang up on purpose (an endless body, a refused response, a
        # closed keep-alive connection); that is not a server error worth a traceback.
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


@dataclass
class SimulatorServer:
    """Serves one :class:`RepositorySimulator` on 127.0.0.1:<ephemeral>, logging requests.

    ``metadata_url`` and ``targets_url`` are the base URLs a client is given.
    Ready as soon as the constructor returns (the socket is bound and listening).
    """

    sim: RepositorySimulator
    overrides: dict[str, Canned] = field(default_factory=dict)
    log: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self._httpd = _HTTPServer(self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def metadata_url(self) -> str:
        return f"{self.url}/metadata"

    @property
    def targets_url(self) -> str:
        return f"{self.url}/targets"

    def override(self, path: str, canned: Canned | bytes) -> None:
        """Answer requests for ``path`` (any spelling; see :func:`normalize_path`) with ``canned``."""
        if isinstance(canned, bytes):
            canned = Canned(200, canned)
        self.overrides[normalize_path(path)] = canned

    def requests(self) -> list[Request]:
        with self.lock:
            return list(self.log)

    def fetched(self) -> list[str]:
        """Normalised paths requested so far, in order."""
        return [r.path for r in self.requests()]

    def clear_log(self) -> None:
        with self.lock:
            self.log.clear()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)
