"""OCI sources for the unit renderer: Kustomization artifacts and Helm charts, as local files.

`OCISources` is what `core.render.unit` asks, before any tool runs, for:

- the content of an `OCIRepository` a Kustomization points at (`sourceRef.kind: OCIRepository`):
  kustomize-controller untars whatever artifact source-controller stored, so an `extract` and a
  `copy` layer both become a directory here;
- the chart of a HelmRelease `chartRef` to an `OCIRepository`, with helm-controller's digest
  tracking: the chart's version becomes `<version>+<first 12 hex of the digest>`, and a tag that
  differs from the chart's own version fails, as helm-controller fails it;
- the chart of an OCI `HelmRepository` (`type: oci`).

An unpacked artifact is read whole into memory, and read again from a fresh pull of the same
digest if the cache's byte budget removed it during the walk (`core.render.evict` renames it away
first, so the walk notices): a walk cut short never yields half an artifact.

Each OCIRepository object must have been rendered in the cluster (else the unit waits, then fails
naming it). All downloads go through `core.oci` and the fetch policy; this module reads and writes
only the cache and the unit's work directory, and never runs a tool.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from core import semver, yamlio
from core.errors import InputError, RenderError, TidegateError
from core.fetch import FetchPolicy
from core.host.files import DirectorySource
from core.model import FLUX_SOURCE_GROUP, Manifest, ObjectRef
from core.oci.registry import RegistryClient
from core.oci.source import (
    Artifact,
    OCIRepositorySpec,
    PulledChart,
    pull_artifact,
    pull_chart,
    unpacked,
)
from core.oci.unpack import UnpackError, unpack
from core.repo import sourceignore
from core.repo.view import FileView, made_id
from core.units import SourceRef

__all__ = [
    "MissingSource",
    "OCIContent",
    "OCISources",
    "is_oci_helm_repository",
    "prepare_chart",
]


_T = TypeVar("_T")
_VERSION_LINE = re.compile(r"^version:[^\n]*$", re.MULTILINE)


class MissingSource(TidegateError):  # noqa: N818 - the unit waits; shown only if it never appears
    """The OCIRepository a unit needs has not been rendered (yet)."""

    def __init__(self, ref: SourceRef) -> None:
        super().__init__(str(ref))
        self.ref = ref


@dataclass(frozen=True)
class OCIContent:
    """A pulled OCIRepository and the repository file that defines it."""

    artifact: Artifact
    spec: OCIRepositorySpec
    defined_in: str | None


class OCISources:
    """Pulls OCI content for one revision under one fetch policy."""

    def __init__(self, policy: FetchPolicy, cache_dir: Path) -> None:
        self.client = RegistryClient(policy, cache_dir)
        self._views: dict[tuple[Path, str | None], FileView] = {}
        self._lock = threading.Lock()

    def view(self, content: OCIContent) -> FileView:
        """The files source-controller archives from an extracted artifact.

        For an `extract` layer, as for a git artifact, `.sourceignore` files inside it and the
        OCIRepository's `spec.ignore` apply, with Flux's default exclusions
        (`core.repo.sourceignore`); a `copy` layer is stored unfiltered.
        """
        # A `copy` layer is stored as it is: nothing is filtered out of it.
        filtered = content.spec.operation == "extract"
        key = (content.artifact.path, content.spec.ignore if filtered else "<copy>")
        with self._lock:
            found = self._views.get(key)
        if found is None:
            found = self._read(content, filtered=filtered)
            with self._lock:
                self._views[key] = found
        return found

    def _read(self, content: OCIContent, *, filtered: bool) -> FileView:
        """Read an unpacked artifact whole, pulling it again if the cache's budget removed it.

        Eviction (`core.render.evict`) renames a directory away before deleting it, so a walk it
        cut short would see files vanish: the directory must be the same one after the walk.
        """
        spec = content.spec

        def read(root: Path) -> FileView:
            return _artifact_view(root, spec.name, spec.ignore, filtered=filtered)

        found = _read_whole(content.artifact.path, read)
        if found is None:
            found = _read_whole(self.again(content, as_directory=True).artifact.path, read)
        if found is None:
            raise RenderError(f"{spec.name}: the artifact was removed from the cache while read")
        return found

    def again(self, content: OCIContent, *, as_directory: bool) -> OCIContent:
        """The same content pulled again, after the cache's byte budget removed it.

        By the digest the first pull resolved, not by its tag (which may have moved since), and
        under the first pull's revision, which names the tag the chart version is checked against.
        """
        digest = content.artifact.revision.rpartition("@")[2]
        pulled = pull_artifact(self.client, dataclasses.replace(content.spec, digest=digest))
        path = pulled.path
        if as_directory and not path.is_dir():
            path = unpacked(self.client, path)
        artifact = Artifact(content.artifact.revision, path, pulled.annotations)
        return OCIContent(artifact, content.spec, content.defined_in)

    def repository(
        self, ref: SourceRef, objects: Mapping[ObjectRef, Manifest], *, as_directory: bool
    ) -> OCIContent:
        """Pull the artifact of the OCIRepository `ref` names.

        With `as_directory` a `copy` layer is unpacked too (what kustomize-controller does with
        any artifact); without it a `copy` layer stays the compressed blob (a chart archive).
        """
        found = objects.get(ObjectRef(FLUX_SOURCE_GROUP, "OCIRepository", ref.namespace, ref.name))
        if found is None:
            raise MissingSource(ref)
        spec = OCIRepositorySpec.parse(found.body, file=found.source)
        artifact = pull_artifact(self.client, spec)
        if as_directory and not artifact.path.is_dir():
            try:
                directory = unpacked(self.client, artifact.path)
            except UnpackError as exc:
                raise RenderError(f"{spec.name}: the artifact cannot be unpacked: {exc}") from None
            artifact = Artifact(artifact.revision, directory, artifact.annotations)
        return OCIContent(artifact, spec, found.source)

    def helm_repository_chart(
        self, repository: Manifest, chart: str, version: str | None
    ) -> PulledChart:
        """Pull a chart from an OCI HelmRepository object."""
        spec = repository.body.get("spec") or {}
        insecure = bool(spec.get("insecure")) if isinstance(spec, Mapping) else False
        return pull_chart(
            self.client, str(spec.get("url") or ""), chart, version, insecure=insecure
        )


def _read_whole(directory: Path, read: Callable[[Path], _T]) -> _T | None:
    """`read(directory)`, or None when the directory was removed or replaced meanwhile."""
    try:
        before = directory.stat().st_ino
        found = read(directory)
        after = directory.stat().st_ino
    except (OSError, InputError):
        return None
    return found if before == after else None


def _artifact_view(root: Path, label: str, spec_ignore: str | None, *, filtered: bool) -> FileView:
    source = DirectorySource(root)
    contents: dict[str, bytes] = {}
    pending = [""]
    while pending:
        directory = pending.pop()
        for name in source.listdir(directory):
            path = f"{directory}/{name}" if directory else name
            if source.is_dir(path):
                pending.append(path)
            elif source.is_file(path):
                contents[path] = source.read(path)
    kept = (
        sourceignore.included(contents, contents.__getitem__, spec_ignore)
        if filtered
        else list(contents)
    )
    files = {path: made_id(contents[path]) for path in kept}
    made = {files[path]: contents[path] for path in kept}
    # No file of an artifact comes from the repository: origins are empty.
    return FileView(label, files, _no_blob, made=made, origins=dict.fromkeys(files, ""))


def _no_blob(blob_id: str) -> bytes:
    raise KeyError(blob_id)  # every file of an artifact view is made content


def prepare_chart(artifact: Artifact, workdir: Path, *, track_digest: bool) -> Path:
    """Return a chart directory from an artifact, with helm-controller's version tracking.

    The artifact is a chart archive (`copy`) or a directory holding one chart directory
    (`extract`). With `track_digest` (a chartRef to an OCIRepository) the chart's version gets
    the first 12 hex digits of the artifact digest as build metadata, and a tag revision must
    be a semantic version equal to the chart's (helm-controller's
    `mutateChartWithSourceRevision`).

    Raises:
        RenderError: the artifact is not one chart, or its version does not match the tag.
    """
    root = workdir / "oci-chart"
    if artifact.path.is_dir():
        shutil.copytree(artifact.path, root, symlinks=False)
    else:
        root.mkdir()
        try:
            unpack(artifact.path, root)
        except UnpackError as exc:
            raise RenderError(f"the chart archive cannot be unpacked: {exc}") from None
    chart_dir = _single_chart(root)
    if track_digest:
        _track_digest(chart_dir / "Chart.yaml", artifact.revision)
    return chart_dir


def _single_chart(root: Path) -> Path:
    """Helm loads an archive holding one top-level chart directory; find it."""
    entries = [p for p in root.iterdir() if not p.name.startswith(".")] if root.is_dir() else []
    if (root / "Chart.yaml").is_file():
        return root
    dirs = [p for p in entries if p.is_dir() and (p / "Chart.yaml").is_file()]
    if len(dirs) != 1:
        raise RenderError("the artifact does not hold exactly one Helm chart (Chart.yaml)")
    return dirs[0]


def _track_digest(chart_yaml: Path, revision: str) -> None:
    try:
        meta = yamlio.load(chart_yaml.read_bytes())
    except (yamlio.YAMLError, OSError):
        raise RenderError("the chart's Chart.yaml is not valid YAML") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("version"), str | int | float):
        raise RenderError("the chart's Chart.yaml has no version")
    version = str(meta["version"])
    try:
        parsed = semver.parse_version(version)
    except semver.SemverError as exc:
        raise RenderError(f"the chart version is invalid: {exc}") from None
    tag, _, digest = revision.rpartition("@")
    if tag:
        # OCI tags spell semver's `+` as `_` (helm's convention); the tag must be the version.
        try:
            tagged = semver.parse_version(tag.replace("_", "+"))
        except semver.SemverError:
            raise RenderError(f"failed parsing artifact revision {tag}") from None
        if tagged.key() != parsed.key():
            raise RenderError(f"artifact revision {tag} does not match chart version {version}")
    hex_part = digest.partition(":")[2]
    if len(hex_part) < 12:
        raise RenderError(f"artifact revision {revision} has no digest")
    tracked = str(
        semver.Version(parsed.major, parsed.minor, parsed.patch, parsed.prerelease, hex_part[:12])
    )
    # Only the version line changes: a YAML round trip could retype other fields (`appVersion:
    # 1.0` would become a number).
    text = chart_yaml.read_text()
    updated, count = _VERSION_LINE.subn(f"version: {tracked}", text, count=1)
    if count != 1:
        raise RenderError("the chart's Chart.yaml has no top-level version line")
    chart_yaml.write_text(updated)


def is_oci_helm_repository(repository: Manifest) -> bool:
    """Tell whether a HelmRepository object is an OCI one (`type: oci` or an `oci://` URL)."""
    spec = repository.body.get("spec") or {}
    if not isinstance(spec, Mapping):
        return False
    return spec.get("type") == "oci" or str(spec.get("url") or "").startswith("oci://")
