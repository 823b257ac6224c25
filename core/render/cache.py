"""A content-addressed cache of unit renders, so an edit re-renders only the units it touches.

A render is stored under a key over everything that decides it: the unit's spec, its substitution
variables, the tool versions and the digest of every repository file the render read. Finding that
key needs the input set, which only a walk of the kustomization files yields; to avoid walking
every unit on every run, each spec also keeps a short list of *receipts*: the input set of an
earlier render and the listing of the directories those files sit in. If the new tree still holds
the same bytes at those paths and the same names in those directories, the walk would read the
same files again and the render is reused without reading anything.

Entries hold only masked manifests (see `core.secrets`), never a cleartext Secret value. The
masking key lives in the cache directory, readable by its owner only, so tokens stay comparable
across runs. Writes are atomic (rename), so concurrent previews never see half an entry.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import secrets
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

from core.model import Manifest, ObjectRef

__all__ = ["CachedRender", "RenderCache", "TreeView", "canonical_key"]

_RECEIPTS_PER_SPEC = 4
_FORMAT = "1"


class TreeView(Protocol):
    """What the cache needs of a revision: blob ids and directory listings."""

    def digest(self, paths: Iterable[str] | None = None) -> str:
        """Content address of a set of files."""
        ...

    def listdir(self, path: str = "") -> list[str]:
        """Names directly in a directory."""
        ...


@dataclass(frozen=True)
class CachedRender:
    """A stored render: its manifests and the repository files it read."""

    manifests: tuple[Manifest, ...]
    inputs: frozenset[str]

    @functools.cached_property
    def by_ref(self) -> Mapping[ObjectRef, Manifest]:
        """The manifests by identity; one mapping per render, shared by every side using it."""
        return MappingProxyType({manifest.ref: manifest for manifest in self.manifests})


def canonical_key(*parts: object) -> str:
    """Return a stable sha256 over JSON-serialisable parts."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


class RenderCache:
    """Renders and receipts on disk under one directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        # Base and head mostly share renders: parse each once per run, and hand both sides the
        # same objects, which the planner then skips by identity.
        self._loaded: dict[str, CachedRender] = {}
        self._receipt_lists: dict[str, list[dict[str, Any]]] = {}
        (root / "renders").mkdir(parents=True, exist_ok=True)
        (root / "receipts").mkdir(parents=True, exist_ok=True)

    def masking_key(self) -> bytes:
        """Return this cache's Secret-masking key, creating it (owner-only) on first use."""
        path = self.root / "masking.key"
        try:
            return path.read_bytes()
        except FileNotFoundError:
            key = secrets.token_bytes(32)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(key)
            return key

    def lookup(self, spec_key: str, tree: TreeView) -> CachedRender | None:
        """Return the render of a spec whose inputs are unchanged in `tree`, if stored."""
        for receipt in self._receipts(spec_key):
            if self._still_valid(receipt, tree):
                found = self._load(receipt["render"])
                if found is not None:
                    return found
        return None

    def store(self, spec_key: str, tree: TreeView, render: CachedRender) -> None:
        """Keep a render and a receipt that lets `lookup` find it from an unchanged tree."""
        dirs = sorted({path.rpartition("/")[0] for path in render.inputs})
        render_key = canonical_key(spec_key, tree.digest(render.inputs))
        receipt: dict[str, Any] = {
            "inputs": sorted(render.inputs),
            "dirs": dirs,
            "state": _state(tree, render.inputs, dirs),
            "render": render_key,
        }
        payload = {
            "format": _FORMAT,
            "inputs": receipt["inputs"],
            "manifests": [
                {"apiVersion": m.api_version, "source": m.source, "body": m.body}
                for m in render.manifests
            ],
        }
        self._write(self._render_path(render_key), payload)
        receipts = [r for r in self._receipts(spec_key) if r["render"] != render_key]
        kept = [receipt, *receipts][:_RECEIPTS_PER_SPEC]
        self._write(self._receipt_path(spec_key), kept)
        self._receipt_lists[spec_key] = kept

    def _still_valid(self, receipt: Mapping[str, Any], tree: TreeView) -> bool:
        return bool(receipt["state"] == _state(tree, receipt["inputs"], receipt["dirs"]))

    def _receipts(self, spec_key: str) -> list[dict[str, Any]]:
        if spec_key not in self._receipt_lists:
            data = self._read(self._receipt_path(spec_key))
            self._receipt_lists[spec_key] = data if isinstance(data, list) else []
        return self._receipt_lists[spec_key]

    def _load(self, render_key: str) -> CachedRender | None:
        if render_key in self._loaded:
            return self._loaded[render_key]
        data = self._read(self._render_path(render_key))
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            return None
        manifests = tuple(
            Manifest(api_version=m["apiVersion"], body=m["body"], source=m["source"])
            for m in data["manifests"]
        )
        found = CachedRender(manifests, frozenset(data["inputs"]))
        self._loaded[render_key] = found
        return found

    def _render_path(self, key: str) -> Path:
        return self.root / "renders" / key[:2] / f"{key}.json"

    def _receipt_path(self, key: str) -> Path:
        return self.root / "receipts" / key[:2] / f"{key}.json"

    @staticmethod
    def _read(path: Path) -> Any:
        try:
            return json.loads(path.read_bytes())
        except (FileNotFoundError, ValueError):
            # A missing or damaged entry is a miss; the render is simply done again.
            return None

    @staticmethod
    def _write(path: Path, data: object) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, scratch = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, separators=(",", ":"))
        os.replace(scratch, path)


def _state(tree: TreeView, inputs: Iterable[str], dirs: Sequence[str]) -> str:
    """Digest of the input files' contents plus the names in their directories."""
    listing = {directory: _listdir(tree, directory) for directory in dirs}
    return canonical_key(tree.digest(inputs), listing)


def _listdir(tree: TreeView, directory: str) -> list[str] | None:
    try:
        return tree.listdir(directory)
    except NotADirectoryError:
        return None
