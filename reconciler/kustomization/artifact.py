"""The artifact step: the source's artifact unpacked on disk, fetched once per digest.

The fetcher (download, digest verification, safe untar) is the source side's; this step keeps the
unpacked trees in a small cache keyed by the artifact's `sha256:` digest, so reconciling many
Kustomizations of one revision, or the same revision every interval, downloads it once. A tree is
unpacked into a private directory and renamed into place, so a reader never sees half of one. A 404
is Flux's "Source is not ready, artifact not found" retried after `--requeue-dependency`; every
other failure is `ArtifactFailed` with the fetcher's message. It never runs kustomize.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import threading
from pathlib import Path

from core.errors import TidegateError
from core.host.files import DirectorySource
from core.units import source_path
from reconciler.kustomization.deps import ArtifactFetcher
from reconciler.kustomization.durations import format_duration
from reconciler.kustomization.model import Reason, StepFailed
from reconciler.kustomization.source import Artifact

__all__ = ["ArtifactCache", "ArtifactMissing", "check_path"]

_DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")


class ArtifactMissing(TidegateError):  # noqa: N818 - the source server's 404
    """The source's artifact server answered 404 for the artifact URL."""


class ArtifactCache:
    """Unpacked artifacts by digest under `root`, at most `keep` of them."""

    def __init__(self, fetcher: ArtifactFetcher, root: Path, *, keep: int = 8) -> None:
        self._fetcher = fetcher
        self._root = root
        self._keep = keep
        self._lock = threading.Lock()
        self._fetching: dict[str, threading.Lock] = {}

    def tree(self, artifact: Artifact, *, requeue_dependency: float) -> Path:
        """The directory holding `artifact`'s files; `StepFailed` when it cannot be had."""
        match = _DIGEST.match(artifact.digest)
        if match is None:
            raise StepFailed(
                Reason.ARTIFACT_FAILED,
                f"artifact of revision {artifact.revision} has no valid digest "
                f"(want sha256:<64 hex>, got {artifact.digest[:80]!r})",
            )
        target = self._root / match.group(1)
        with self._lock:
            lock = self._fetching.setdefault(match.group(1), threading.Lock())
        with lock:
            if target.is_dir():
                return target
            self._root.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix="fetch-", dir=self._root))
            try:
                self._fetcher.fetch(artifact.url, artifact.digest, staging)
            except ArtifactMissing:
                shutil.rmtree(staging, ignore_errors=True)
                raise StepFailed(
                    Reason.ARTIFACT_FAILED,
                    "Source is not ready, artifact not found, retrying in "
                    f"{format_duration(requeue_dependency)}",
                    requeue_after=requeue_dependency,
                ) from None
            except TidegateError as exc:
                shutil.rmtree(staging, ignore_errors=True)
                raise StepFailed(
                    Reason.ARTIFACT_FAILED, f"failed to download artifact, error: {exc}"
                ) from None
            staging.rename(target)
        self._evict(keep_also=target)
        return target

    def _evict(self, keep_also: Path) -> None:
        with self._lock:
            trees = sorted(
                (
                    p
                    for p in self._root.iterdir()
                    if p.is_dir() and _DIGEST.match(f"sha256:{p.name}")
                ),
                key=lambda p: p.stat().st_mtime,
                reverse=True,
            )
            for old in trees[self._keep :]:
                if old != keep_also:
                    shutil.rmtree(old, ignore_errors=True)


def check_path(tree: Path, path: str) -> None:
    """`ArtifactFailed` when `spec.path` is not a directory of the artifact (Flux's message)."""
    try:
        relative = source_path(path)
    except TidegateError as exc:
        raise StepFailed(Reason.ARTIFACT_FAILED, f"kustomization path not found: {exc}") from None
    if not DirectorySource(tree).is_dir(relative):
        raise StepFailed(Reason.ARTIFACT_FAILED, f"kustomization path not found: {path or './'}")
