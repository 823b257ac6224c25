"""A content-addressed cache of unit renders, so an edit re-renders only the units it touches.

A render is stored under a key over everything that decides it: the unit's spec, its substitution
variables, the tool versions and the digest of every repository file the render read. Finding that
key needs the input set, which only a walk of the kustomization files yields; to avoid walking
every unit on every run, each spec also keeps a short list of *receipts*: the input set of an
earlier render and the listing of the directories those files sit in. If the new tree still holds
the same bytes at those paths and the same names in those directories, the walk would read the
same files again and the render is reused without reading anything.

A view that names its content (`identity`: the repository's artifact at one commit under one set
of ignore rules) also gets a *revision memo*: spec key -> render, for every lookup that found a
render in that content and every render made from it. The receipt check is a function of the
content alone, so the same content gives the same answer: a later preview of the same revision
(a CI base, or a service's next pull request on the same base) finds each render without reading
receipts or checking them. Memos are written by `save_memos`, one file per content. Next to them
the cache stores what `core.render.clusters` keeps of a discovered cluster (`write_cluster`).

Entries hold only masked manifests (see `core.secrets`), never a cleartext Secret value. The
masking key lives in the cache directory, readable by its owner only, so tokens stay comparable
across runs. Writes are atomic (rename), so concurrent previews never see half an entry.

A lookup that finds an entry marks it used by setting its file's mtime (once per entry every few
minutes per process, not on every hit), which is what `enforce_budget` (`core.render.evict`) ranks
entries by. An entry removed under a reader is a miss, and the render is done again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Generic, Protocol, TypeVar

import orjson

from core.errors import TidegateError
from core.host.usage import MARK_EVERY
from core.model import (
    FLUX_HELM_GROUP,
    FLUX_KUSTOMIZE_GROUP,
    FLUX_SOURCE_GROUP,
    Manifest,
    ObjectRef,
)
from core.render import evict

__all__ = [
    "CacheCorruptError",
    "CachedRender",
    "RenderCache",
    "TreeView",
    "canonical_key",
    "watched_dirs",
]

_RECEIPTS_PER_SPEC = 4
MEMORY_ENTRIES = 8192
"""Renders (and receipt lists) a cache keeps parsed in memory: several previews of a large fleet."""
_V = TypeVar("_V")
_FORMAT = "4"
_MEMOS_IN_MEMORY = 8
# Kept clusters and their kept plans held in memory by a long-lived process: both sides of a
# fleet of 200 clusters. Each holds its units' facts, not their objects. With 64, a 100-cluster
# fleet's base (100 clusters and 100 plans) went round the bound at every preview, and every
# preview read all of them from disk again (2.5 s of a warm one-file preview against 1.1 s).
_CLUSTERS_IN_MEMORY = 512
_KEY = re.compile(r"[0-9a-f]{64}")
# A long-lived process (the PR service) scans for eviction at most this often for one budget, while
# its last pass left this share of the budget free: a pass costs one lstat per file of the cache,
# and a warm preview writes a few renders, far less than the headroom.
_PASS_EVERY = 60.0
_HEADROOM = 0.9


class TreeView(Protocol):
    """What the cache needs of a revision: blob ids and directory listings.

    A view may also carry `identity`, a string that names its whole content (two views with the
    same identity hold the same files with the same bytes); it enables the revision memo.
    """

    def digest(self, paths: Iterable[str] | None = None) -> str:
        """Content address of a set of files."""
        ...

    def listdir(self, path: str = "") -> list[str]:
        """Names directly in a directory."""
        ...


# Kinds other units read (Flux units, substitution and values sources, chart sources). Their bodies
# are stored in a render's index, so discovering an unchanged unit never loads the other bodies.
_INDEXED_KINDS = frozenset(
    {
        (FLUX_KUSTOMIZE_GROUP, "Kustomization"),
        (FLUX_HELM_GROUP, "HelmRelease"),
        ("", "ConfigMap"),
        ("", "Secret"),
        (FLUX_SOURCE_GROUP, "HelmRepository"),
        (FLUX_SOURCE_GROUP, "GitRepository"),
        (FLUX_SOURCE_GROUP, "OCIRepository"),
        ("source.extensions.fluxcd.io", "ArtifactGenerator"),
    }
)


@dataclass(frozen=True)
class CachedRender:
    """A render: its objects by identity and the repository files it read."""

    objects: Mapping[ObjectRef, Manifest]
    """One mapping per render, shared by every side that uses it (the planner relies on it)."""
    inputs: frozenset[str]
    chart_crds: frozenset[ObjectRef] = frozenset()
    """For a HelmRelease: the CRDs from its chart's `crds/` directory."""
    key: str = field(default="", compare=False)
    """Where the cache keeps it (`load`); empty for a render not stored (yet)."""

    @classmethod
    def of(
        cls,
        manifests: Iterable[Manifest],
        inputs: Iterable[str],
        chart_crds: Iterable[ObjectRef] = (),
    ) -> CachedRender:
        """Wrap a fresh render."""
        objects = MappingProxyType({m.ref: m for m in manifests})
        return cls(objects, frozenset(inputs), frozenset(chart_crds))


class _StoredObjects(Mapping[ObjectRef, Manifest]):
    """A stored render's objects: identities up front, bodies on first use.

    Indexed kinds come with the index; any other body loads the render's bodies file once.
    Treat the manifests as immutable, like any other.
    """

    def __init__(
        self, entries: list[list[Any]], indexed: Mapping[str, Any], load: Callable[[], Any]
    ) -> None:
        self._entries = entries
        self._positions = {ObjectRef(*entry[2:]): index for index, entry in enumerate(entries)}
        self._indexed = indexed
        self._load = load
        self._bodies: list[Any] | None = None
        self._made: dict[int, Manifest] = {}
        self._lock = threading.Lock()

    def __getitem__(self, ref: ObjectRef) -> Manifest:
        index = self._positions[ref]
        made = self._made.get(index)
        if made is None:
            api_version, source = self._entries[index][:2]
            body = self._indexed.get(str(index))
            if body is None:
                body = self._all_bodies()[index]
            made = self._made.setdefault(index, Manifest(api_version, body, source, ref))
        return made

    def __iter__(self) -> Iterator[ObjectRef]:
        return iter(self._positions)

    def __len__(self) -> int:
        return len(self._positions)

    def __contains__(self, ref: object) -> bool:
        return ref in self._positions

    def _all_bodies(self) -> list[Any]:
        with self._lock:
            if self._bodies is None:
                bodies = self._load()
                if not isinstance(bodies, list) or len(bodies) != len(self._entries):
                    # The index promised bodies the store no longer has: never guess.
                    raise CacheCorruptError("a render's bodies are missing or damaged")
                self._bodies = bodies
            return self._bodies


class _Deferred(Mapping[ObjectRef, Manifest]):
    """A stored render's objects, its index read on first use (`RenderCache.deferred`)."""

    def __init__(self, cache: RenderCache, render_key: str) -> None:
        self._cache = cache
        self._key = render_key
        self._objects: Mapping[ObjectRef, Manifest] | None = None
        self._lock = threading.Lock()

    def _read(self) -> Mapping[ObjectRef, Manifest]:
        if self._objects is None:
            with self._lock:
                if self._objects is None:
                    render = self._cache.load(self._key)
                    if render is None:
                        raise CacheCorruptError(f"the stored render {self._key} is gone")
                    self._objects = render.objects
        return self._objects

    def __getitem__(self, ref: ObjectRef) -> Manifest:
        return self._read()[ref]

    def __iter__(self) -> Iterator[ObjectRef]:
        return iter(self._read())

    def __len__(self) -> int:
        return len(self._read())

    def __contains__(self, ref: object) -> bool:
        return ref in self._read()


class CacheCorruptError(TidegateError):
    """A cache entry was damaged after it was checked; clear the cache directory."""


_KEY_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
_FALLBACK_MARK = b"json:"  # orjson's text of a tuple starts with "[": the two never meet


def canonical_key(*parts: object) -> str:
    """Return a stable sha256 over JSON-serialisable parts (anything else by its repr).

    orjson writes the text (a warm preview takes ~300 keys); what it cannot write (a lone
    surrogate from a path that is not UTF-8, an integer beyond 64 bits) the standard encoder
    does, under a mark of its own.
    """
    try:
        text = orjson.dumps(parts, option=_KEY_OPTIONS, default=repr)
    except orjson.JSONEncodeError:
        plain = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=repr)
        text = _FALLBACK_MARK + plain.encode()
    return hashlib.sha256(text).hexdigest()


class RenderCache:
    """Renders and receipts on disk under one directory, the most recently used in memory.

    The memory part is bounded (`memory_entries` renders and as many receipt lists), so a
    long-lived service can keep one cache for every preview it runs without growing with them.
    """

    def __init__(self, root: Path, *, memory_entries: int = MEMORY_ENTRIES) -> None:
        self.root = root
        self._root = str(root)
        # Base and head mostly share renders: parse each once, and hand both sides the same
        # objects, which the planner then skips by identity. A service's next preview of the
        # same repository finds them parsed already.
        self._loaded: _Recent[CachedRender] = _Recent(memory_entries)
        self._receipt_lists: _Recent[list[dict[str, Any]]] = _Recent(memory_entries)
        # Revision memos (spec key -> render key) by content identity; a few revisions at most.
        self._memos: _Recent[dict[str, str]] = _Recent(_MEMOS_IN_MEMORY)
        self._memos_changed: set[str] = set()
        # Discovered clusters as loaded or saved, by key (`core.render.clusters`): a service's
        # next preview of the same base takes them without reading a file.
        self._clusters: _Recent[object] = _Recent(_CLUSTERS_IN_MEMORY)
        # When and under which budget this process last left the cache well under budget.
        self._last_pass: tuple[float, int, evict.Eviction] | None = None
        self._memo_lock = threading.Lock()
        self.memo_hits = 0
        """Lookups answered by a revision memo (for tests)."""
        self.kept_hits = 0
        """Clusters read as kept instead of discovered (`core.render.clusters`, for tests)."""
        self.index_reads = 0
        """Render indexes read from disk (for tests: what a kept cluster costs)."""
        self._key: bytes | None = None
        self._key_lock = threading.Lock()
        # Shard directories this instance made or found: a cold preview writes a thousand entries.
        self._dirs: set[str] = set()
        # Entry files this instance marked used, and when (monotonic): one utime per entry.
        self._touched: dict[str, float] = {}
        self._touch_lock = threading.Lock()
        (root / "renders").mkdir(parents=True, exist_ok=True)
        (root / "receipts").mkdir(parents=True, exist_ok=True)
        (root / "revisions").mkdir(parents=True, exist_ok=True)

    def masking_key(self) -> bytes:
        """Return this cache's Secret-masking key, creating it (owner-only) on first use."""
        with self._key_lock:
            if self._key is None:
                self._key = self._load_or_create_key()
            return self._key

    def _load_or_create_key(self) -> bytes:
        path = self.root / "masking.key"
        if not path.exists():
            # Written whole to a private file, then published with link(), which fails if another
            # process got there first: nobody ever reads a half-written key.
            fd, scratch = tempfile.mkstemp(dir=self.root, prefix=".key-")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(secrets.token_bytes(32))
                with contextlib.suppress(FileExistsError):
                    os.link(scratch, path)
            finally:
                os.unlink(scratch)
        return path.read_bytes()

    def lookup(self, spec_key: str, tree: TreeView) -> CachedRender | None:
        """Return the render of a spec whose inputs are unchanged in `tree`, if stored."""
        identity = _identity(tree)
        if identity is not None:
            known = self._memo(identity).get(spec_key)
            found = self._load(known) if known is not None else None
            if found is not None:
                self._touch(self._memo_path(identity))
                with self._memo_lock:
                    self.memo_hits += 1
                return found
        for receipt in self._receipts(spec_key):
            if self._still_valid(receipt, tree):
                found = self._load(receipt["render"])
                if found is not None:
                    self._touch(self._receipt_path(spec_key))
                    if identity is not None:
                        self._note(identity, spec_key, receipt["render"])
                    return found
        return None

    def save_memos(self) -> None:
        """Write the revision memos that gained entries since they were loaded."""
        with self._memo_lock:
            changed = [(key, self._memos.get(key)) for key in sorted(self._memos_changed)]
            self._memos_changed.clear()
        for identity, memo in changed:
            if memo is not None:
                with self._memo_lock:
                    data = dict(memo)
                self._write(self._memo_path(identity), data)

    def _memo(self, identity: str) -> dict[str, str]:
        with self._memo_lock:
            found = self._memos.get(identity)
        if found is None:
            data = self._read(self._memo_path(identity))
            # Only render keys (sha256 hex) are kept: a damaged memo names nothing to read.
            loaded = (
                {k: v for k, v in data.items() if isinstance(v, str) and _KEY.fullmatch(v)}
                if isinstance(data, dict)
                else {}
            )
            with self._memo_lock:
                found = self._memos.get(identity)
                if found is None:
                    found = loaded
                    self._memos[identity] = found
        return found

    def _note(self, identity: str, spec_key: str, render_key: str) -> None:
        memo = self._memo(identity)
        with self._memo_lock:
            if memo.get(spec_key) != render_key:
                memo[spec_key] = render_key
                self._memos_changed.add(identity)

    def store(self, spec_key: str, tree: TreeView, render: CachedRender) -> CachedRender:
        """Keep a render and a receipt that lets `lookup` find it from an unchanged tree.

        Returns the render named by its `key`, for what keeps renders by key
        (`core.render.clusters`).
        """
        paths = sorted(render.inputs)
        inputs_digest = tree.digest(paths)
        render_key = canonical_key(spec_key, inputs_digest)
        manifests = list(render.objects.values())
        index = {
            "format": _FORMAT,
            "inputs": paths,
            "entries": [[m.api_version, m.source, *m.ref] for m in manifests],
            "chartCrds": sorted(list(ref) for ref in render.chart_crds),
            "indexed": {
                str(position): m.body
                for position, m in enumerate(manifests)
                if (m.ref.group, m.ref.kind) in _INDEXED_KINDS
            },
        }
        # Bodies first, index last: an index on disk always has its bodies. A render without
        # objects (a kept footprint) has none to load, so it needs no bodies file.
        if manifests:
            self._write(self._bodies_path(render_key), [m.body for m in manifests])
        self._write(self._render_path(render_key), index)
        self._keep_receipt(spec_key, tree, paths, inputs_digest, render_key)
        identity = _identity(tree)
        if identity is not None:
            self._note(identity, spec_key, render_key)
        return replace(render, key=render_key)

    def keep_inputs(self, spec_key: str, tree: TreeView, inputs: Iterable[str]) -> None:
        """Keep a set of repository paths under a key, as a receipt alone.

        For what an input walk found (`core.render.affected`): an entry without objects needs no
        render index, its receipt already lists the paths, so it costs one file instead of two.
        `find_inputs` finds it again while the tree holds the same bytes at those paths and the
        same names in their directories, as `lookup` would.
        """
        paths = sorted(set(inputs))
        self._keep_receipt(spec_key, tree, paths, tree.digest(paths), render_key="")

    def _keep_receipt(
        self, spec_key: str, tree: TreeView, paths: list[str], digest: str, render_key: str
    ) -> None:
        """Put a receipt first in its key's list, replacing one for the same render or state.

        `render_key` is empty for a kept walk, which has no render; such receipts are told apart
        by their state instead. The list keeps the few most recent (`_RECEIPTS_PER_SPEC`).
        """
        dirs = watched_dirs(paths)
        receipt = {
            "inputs": paths,
            "dirs": dirs,
            "state": _state(tree, digest, dirs),
            "render": render_key,
        }
        others = [r for r in self._receipts(spec_key) if _slot(r) != _slot(receipt)]
        kept = [receipt, *others][:_RECEIPTS_PER_SPEC]
        self._write(self._receipt_path(spec_key), kept)
        self._receipt_lists[spec_key] = kept

    def find_inputs(self, spec_key: str, tree: TreeView) -> frozenset[str] | None:
        """Return the paths `keep_inputs` kept under a key, while they still hold, or None.

        An entry an older version kept as a render without objects is found too: its receipt
        lists the same paths.
        """
        for receipt in self._receipts(spec_key):
            if self._still_valid(receipt, tree):
                self._touch(self._receipt_path(spec_key))
                return frozenset(receipt["inputs"])
        return None

    def load(self, render_key: str) -> CachedRender | None:
        """Return the render stored under `key` (a render's `key`), or None if it is gone."""
        return self._load(render_key) if _KEY.fullmatch(render_key) else None

    def present(self, render_key: str) -> bool:
        """Tell whether a render is stored, marking it used, without reading it.

        Marking it used keeps eviction's grace over it: a render found present here stays
        readable for the rest of a preview (see `deferred`).
        """
        return bool(_KEY.fullmatch(render_key)) and self._touch(self._render_path(render_key))

    def deferred(self, render_key: str) -> Mapping[ObjectRef, Manifest]:
        """The objects of a render found `present`, read only when something reads them.

        A kept cluster hands these out for every unit: a cluster nobody looks into costs no
        index read. Missing by then (the cache was cleared under the preview), reading it raises
        `CacheCorruptError`: the preview never guesses.
        """
        return _Deferred(self, render_key)

    def read_cluster(self, key: str, kind: str = "clusters") -> tuple[object | None, Any]:
        """What is kept under a discovered cluster's `key` (see `core.render.clusters`).

        Either the object `remember_cluster` was given (still in memory), or the stored data, or
        (None, None). Thread-safe. `kind` names what is kept of the cluster (`plan`: its plan
        when taken whole, `core.plan.kept`).
        """
        path = self._clusters_path(key, kind)
        known = self._clusters.get(key)
        if known is not None and self._touch(path):
            return known, None
        found = self._read(path)
        if found is not None:
            self._touch(path)
        return None, found

    def write_cluster(self, key: str, data: object, kind: str = "clusters") -> None:
        """Store a discovered cluster's data under `key` (atomically, like every entry)."""
        self._write(self._clusters_path(key, kind), data)

    def remember_cluster(self, key: str, value: object) -> None:
        """Keep a discovered cluster in memory (a few hundred at most) for `read_cluster`."""
        self._clusters[key] = value

    def _still_valid(self, receipt: Mapping[str, Any], tree: TreeView) -> bool:
        state = _state(tree, tree.digest(receipt["inputs"]), receipt["dirs"])
        return bool(receipt["state"] == state)

    def memory_sizes(self) -> tuple[int, int]:
        """How many renders and receipt lists are held in memory (for bounds checks)."""
        return len(self._loaded), len(self._receipt_lists)

    def _receipts(self, spec_key: str) -> list[dict[str, Any]]:
        found = self._receipt_lists.get(spec_key)
        if found is None:
            data = self._read(self._receipt_path(spec_key))
            found = data if isinstance(data, list) else []
            self._receipt_lists[spec_key] = found
        return found

    def _load(self, render_key: str) -> CachedRender | None:
        index_path = self._render_path(render_key)
        known = self._loaded.get(render_key)
        if known is not None:
            if self._touch(index_path):
                return known
            # Evicted since it was parsed (by another process): its bodies may be gone too.
            self._loaded.discard(render_key)
            return None
        data = self._read(index_path)
        self.index_reads += 1
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            return None
        self._touch(index_path)
        bodies_path = self._bodies_path(render_key)
        objects = _StoredObjects(data["entries"], data["indexed"], lambda: self._read(bodies_path))
        chart_crds = frozenset(ObjectRef(*ref) for ref in data.get("chartCrds") or ())
        found = CachedRender(objects, frozenset(data["inputs"]), chart_crds, render_key)
        self._loaded[render_key] = found
        return found

    def enforce_budget(
        self, max_bytes: int, *, grace: float = evict.GRACE_SECONDS
    ) -> evict.Eviction:
        """Remove the least recently used entries and downloads until they fit in `max_bytes`.

        The first call in a process always scans, so each CLI preview enforces the budget it is
        given. A later call with the same budget within `_PASS_EVERY` of a pass that left a tenth
        of the budget free removes nothing and scans nothing: the cache may then exceed its budget
        by what the last minute wrote. A changed budget, or a pass that left less free, scans.

        A pass that removed entries also forgets which entries this process marked used, so each
        is checked on disk (and marked) at its next hit. Other passes keep the marks: a mark is
        at most `MARK_EVERY` old, a quarter of the grace, so no pass here or in another process
        removes a marked entry meanwhile. Re-marking every render of a large fleet after every
        preview cost a warm preview ~30 ms of `utime` at 30 clusters.
        """
        now = time.monotonic()
        last = self._last_pass
        if last is not None and last[1] == max_bytes and now - last[0] < _PASS_EVERY:
            return evict.Eviction(last[2].after, last[2].after, 0)
        result = evict.enforce(self._root, max_bytes, grace=grace)
        if result.removed:
            with self._touch_lock:
                # A shorter grace may have removed entries marked here: check them again.
                self._touched.clear()
        roomy = result.after <= max_bytes * _HEADROOM
        self._last_pass = (now, max_bytes, result) if roomy else None
        return result

    def _touch(self, path: str) -> bool:
        """Mark an entry file used (at most once per `MARK_EVERY`); False if it is gone."""
        now = time.monotonic()
        with self._touch_lock:
            last = self._touched.get(path)
            if last is not None and now - last < MARK_EVERY:
                return True
            self._touched[path] = now
        try:
            os.utime(path)
        except FileNotFoundError:
            with self._touch_lock:
                self._touched.pop(path, None)
            return False
        except OSError:
            return True  # a read-only cache still serves its entries; it just cannot rank them
        return True

    # Plain strings, not Path objects: these run thousands of times per preview.
    def _render_path(self, key: str) -> str:
        return f"{self._root}/renders/{key[:2]}/{key}.json"

    def _bodies_path(self, key: str) -> str:
        return f"{self._root}/renders/{key[:2]}/{key}.bodies.json"

    def _receipt_path(self, key: str) -> str:
        return f"{self._root}/receipts/{key[:2]}/{key}.json"

    def _memo_path(self, identity: str) -> str:
        return f"{self._root}/revisions/{identity[:2]}/{identity}.json"

    def _clusters_path(self, key: str, kind: str) -> str:
        return f"{self._root}/revisions/{key[:2]}/{key}.{kind}.json"

    @staticmethod
    def _read(path: str) -> Any:
        try:
            with open(path, "rb") as handle:
                return orjson.loads(handle.read())
        except (FileNotFoundError, orjson.JSONDecodeError):
            # A missing or damaged entry is a miss; the render is simply done again.
            return None

    def _write(self, path: str, data: object) -> None:
        directory = os.path.dirname(path)
        if directory not in self._dirs:
            os.makedirs(directory, exist_ok=True)
            self._dirs.add(directory)
        try:
            fd, scratch = tempfile.mkstemp(dir=directory, prefix=".tmp-")
        except FileNotFoundError:
            # Removed since (a long-lived service's cache cleared under it): make it again.
            os.makedirs(directory, exist_ok=True)
            fd, scratch = tempfile.mkstemp(dir=directory, prefix=".tmp-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(orjson.dumps(data))
        os.replace(scratch, path)


class _Recent(Generic[_V]):
    """A mapping that keeps only its `size` most recently used entries (thread-safe)."""

    def __init__(self, size: int) -> None:
        self._size = max(1, size)
        self._entries: OrderedDict[str, _V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> _V | None:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def __setitem__(self, key: str, value: _V) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def discard(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)


def _identity(tree: TreeView) -> str | None:
    """The view's content identity, when it has one (see `TreeView`)."""
    identity = getattr(tree, "identity", None)
    return identity if isinstance(identity, str) and identity else None


def watched_dirs(inputs: Iterable[str]) -> list[str]:
    """The directories whose listing can change a render: those of the inputs, and their parents.

    A generated kustomization lists a directory even when it holds no input file itself (only a
    sub-directory with its own kustomization, as a fresh `flux bootstrap` leaves a cluster
    directory): a file added there must miss the cache. The repository root is watched only when
    an input sits in it, so a new top-level file does not invalidate every render.
    """
    dirs: set[str] = set()
    for path in inputs:
        directory = path.rpartition("/")[0]
        dirs.add(directory)
        while "/" in directory:
            directory = directory.rpartition("/")[0]
            dirs.add(directory)
    return sorted(dirs)


def _slot(receipt: Mapping[str, Any]) -> str:
    """What makes two receipts of one key the same entry: the render, or a kept walk's state."""
    return str(receipt["render"] or receipt["state"])


def _state(tree: TreeView, inputs_digest: str, dirs: Sequence[str]) -> str:
    """Digest of the input files' contents plus the names in their directories."""
    listing = {directory: _listdir(tree, directory) for directory in dirs}
    # Plain strings only, so orjson's encoding is canonical here; json.dumps cost a tenth of a
    # warm preview.
    text = orjson.dumps([inputs_digest, listing], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(text).hexdigest()


def _listdir(tree: TreeView, directory: str) -> list[str] | None:
    try:
        return tree.listdir(directory)
    except NotADirectoryError:
        return None
