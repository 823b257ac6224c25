"""The artifact step: the source's artifact unpacked on disk, fetched once per digest.

Downloading, digest verification and the safe untar are `core.sources.artifact`'s; this step
keeps the unpacked trees in a small cache keyed by the artifact's digest, so reconciling many
Kustomizations of one revision, or the same revision every interval, downloads it once. A tree
appears under its digest only when complete (the download unpacks into a private directory and
renames it). A 404 is Flux's "Source is not ready, artifact not found" retried after
`--requeue-dependency`; every other failure is `ArtifactFailed` with the download's message
(which names the artifact by URL without query, never its content). It never runs kustomize.

A tree may be read after its run has ended (the predicted-vs-applied preview reads the new
revision in place, on a worker of its own). `TreePins` holds such a tree: the cache never removes
a held tree, so the reader sees it whole until it releases it. The cache stays bounded: at most
`keep` trees plus the ones held.
"""

from __future__ import annotations

import re
import shutil
import threading
from pathlib import Path
from typing import Protocol

from core.errors import TidegateError
from core.fetch import FetchPolicy
from core.host.files import DirectorySource
from core.sources.artifact import ArtifactError, download_artifact
from core.units import source_path
from reconciler.kustomization.model import Reason, StepFailed
from reconciler.kustomization.source import Artifact
from reconciler.status import go_duration

__all__ = ["ArtifactCache", "Downloader", "HttpDownloader", "TreePins", "check_path"]

_DIGEST = re.compile(r"^(sha256|sha384|sha512):([0-9a-f]{64,128})$")


class Downloader(Protocol):
    """Download, verify and unpack one artifact into `target` (which must not exist yet)."""

    def download(self, url: str, digest: str, target: Path, owner: str) -> None:
        """Create `target` with the artifact's files; raise `ArtifactError` on any failure."""


class HttpDownloader:
    """The real downloader: `core.sources.artifact` under the operator's fetch policy."""

    def __init__(self, policy: FetchPolicy) -> None:
        self._policy = policy

    def download(self, url: str, digest: str, target: Path, owner: str) -> None:
        """See `Downloader`."""
        download_artifact(url, digest, target, policy=self._policy, owner=owner)


class TreePins:
    """Unpacked trees held by their readers: the cache removes only trees nobody holds."""

    def __init__(self) -> None:
        # One lock for holding and removing, so a tree is either held before it is removed
        # (and stays) or removed before it is held (and the hold is refused).
        self._lock = threading.Lock()
        self._held: dict[Path, int] = {}

    def hold(self, tree: Path) -> bool:
        """Hold `tree` until `release`; False (nothing held) when it is gone already."""
        with self._lock:
            if not tree.is_dir():
                return False
            self._held[tree] = self._held.get(tree, 0) + 1
            return True

    def release(self, tree: Path) -> None:
        """End one `hold` of `tree`; once no hold is left, the cache may remove it."""
        with self._lock:
            left = self._held.pop(tree, 0) - 1
            if left > 0:
                self._held[tree] = left

    def remove(self, tree: Path) -> bool:
        """Delete `tree` unless it is held; whether it was deleted."""
        with self._lock:
            if tree in self._held:
                return False
            shutil.rmtree(tree, ignore_errors=True)
            return True


class ArtifactCache:
    """Unpacked artifacts by digest under `root`, at most `keep` of them plus the held ones."""

    def __init__(
        self, downloader: Downloader, root: Path, *, keep: int = 8, pins: TreePins | None = None
    ) -> None:
        self._downloader = downloader
        self._root = root
        self._keep = keep
        self._pins = pins or TreePins()
        self._lock = threading.Lock()
        self._fetching: dict[str, threading.Lock] = {}

    def tree(self, artifact: Artifact, *, owner: str, requeue_dependency: float) -> Path:
        """The directory holding `artifact`'s files; `StepFailed` when it cannot be had."""
        match = _DIGEST.match(artifact.digest)
        if match is None:
            raise StepFailed(
                Reason.ARTIFACT_FAILED,
                f"artifact of revision {artifact.revision} has no valid digest "
                f"(want sha256:<hex>, got {artifact.digest[:80]!r})",
            )
        key = f"{match.group(1)}-{match.group(2)}"
        target = self._root / key
        with self._lock:
            lock = self._fetching.setdefault(key, threading.Lock())
        with lock:
            if not target.is_dir():
                self._download(artifact, target, owner, requeue_dependency)
        target.touch()
        self._evict(keep_also=target)
        return target

    def _download(
        self, artifact: Artifact, target: Path, owner: str, requeue_dependency: float
    ) -> None:
        try:
            self._downloader.download(artifact.url, artifact.digest, target, owner)
        except ArtifactError as exc:
            if exc.missing:
                raise StepFailed(
                    Reason.ARTIFACT_FAILED,
                    "Source is not ready, artifact not found, retrying in "
                    f"{go_duration(requeue_dependency)}",
                    requeue_after=requeue_dependency,
                ) from None
            raise StepFailed(
                Reason.ARTIFACT_FAILED, f"failed to download artifact, error: {exc}"
            ) from None

    def _evict(self, keep_also: Path) -> None:
        with self._lock:
            trees = sorted(
                (p for p in self._root.iterdir() if p.is_dir() and "-" in p.name),
                key=lambda p: p.stat().st_mtime,
                reverse=True,
            )
            for old in trees[self._keep :]:
                if old != keep_also:
                    self._pins.remove(old)


def check_path(tree: Path, path: str) -> None:
    """`ArtifactFailed` when `spec.path` is not a directory of the artifact (Flux's message)."""
    try:
        relative = source_path(path)
    except TidegateError as exc:
        raise StepFailed(Reason.ARTIFACT_FAILED, f"kustomization path not found: {exc}") from None
    if not DirectorySource(tree).is_dir(relative):
        raise StepFailed(Reason.ARTIFACT_FAILED, f"kustomization path not found: {path or './'}")
