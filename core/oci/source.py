"""Flux's OCI sources, resolved as source-controller resolves them, into local files.

- `OCIRepositorySpec.parse` reads a `source.toolkit.fluxcd.io/v1` (or v1beta2) OCIRepository and
  names the file, object and field of any mistake; settings a preview cannot honour (credentials,
  cloud providers, signature verification) fail by name instead of being skipped.
- `pull_artifact` picks the reference in source-controller's order (`digest` > `semver` with
  `semverFilter` > `tag` > `latest`), resolves it, selects the layer (`layerSelector.mediaType`,
  else the first) and either unpacks it (`extract`) or keeps the compressed blob (`copy`). The
  revision is `<tag>@sha256:<manifest digest>`, or the bare digest for a digest reference.
- `pull_chart` resolves a chart in an OCI HelmRepository (`type: oci`) as source-controller's
  OCI chart repository does: an exact version is used as the tag directly; otherwise the tags
  that are strict semantic versions are matched against the constraint (`*` when empty) and the
  highest wins. Helm's `_` in a tag stands for `+`.

Unpacked artifacts are cached by layer digest, so base and head share what did not change. This
module fetches through `RegistryClient` only; it never runs a tool.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from core import semver
from core.errors import InputError
from core.host.publish import publish_directory
from core.host.usage import mark_used
from core.oci.reference import OCIReferenceError, Repository, parse_repository
from core.oci.registry import Manifest, OCIError, RegistryClient, RegistryError
from core.oci.unpack import UnpackError, unpack

__all__ = [
    "HELM_CHART_LAYER",
    "Artifact",
    "OCIRepositorySpec",
    "PulledChart",
    "SourceError",
    "pull_artifact",
    "pull_chart",
    "unpacked",
]

HELM_CHART_LAYER = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
_UNSUPPORTED = {
    "spec.secretRef": "registry credentials are not read in previews",
    "spec.serviceAccountName": "registry credentials are not read in previews",
    "spec.certSecretRef": "client certificates are not read in previews",
    "spec.proxySecretRef": "proxies are not used in previews",
    "spec.verify": "signature verification is not supported in previews yet",
}


class SourceError(OCIError):
    """An OCI source could not be resolved or pulled (`unavailable`: see `OCIError`)."""


@dataclass(frozen=True)
class OCIRepositorySpec:
    """The fields of an OCIRepository that decide which content is pulled."""

    name: str
    """`OCIRepository/namespace/name`, for messages."""
    repository: Repository
    digest: str = ""
    semver: str = ""
    semver_filter: str = ""
    tag: str = ""
    media_type: str = ""
    operation: str = "extract"
    ignore: str | None = None
    """`spec.ignore`: gitignore patterns applied to an extracted artifact, as to a git one."""

    @classmethod
    def parse(cls, obj: Mapping[str, Any], *, file: str | None = None) -> OCIRepositorySpec:
        """Read an OCIRepository object; raise `InputError` naming the field that is wrong."""
        meta: Mapping[str, Any] = _mapping(obj.get("metadata"))
        label = f"OCIRepository/{meta.get('namespace') or 'flux-system'}/{meta.get('name')}"
        spec: Mapping[str, Any] = _mapping(obj.get("spec"))

        def fail(field: str, message: str) -> NoReturn:
            raise InputError(message, file=file, obj=label, field=field)

        def text(mapping: Mapping[str, Any], key: str, field: str) -> str:
            value = mapping.get(key)
            if value is None:
                return ""
            if not isinstance(value, str):
                fail(field, f"must be a string, not {type(value).__name__}")
            return value

        for field, why in _UNSUPPORTED.items():
            if spec.get(field.removeprefix("spec.")) not in (None, "", {}):
                fail(field, why)
        provider = text(spec, "provider", "spec.provider") or "generic"
        if provider != "generic":
            fail("spec.provider", f"{provider} credentials are not used in previews")
        url = text(spec, "url", "spec.url")
        if not url:
            fail("spec.url", "is required")
        insecure = spec.get("insecure", False)
        if not isinstance(insecure, bool):
            fail("spec.insecure", "must be a boolean")
        try:
            repository = parse_repository(url, insecure=insecure)
        except OCIReferenceError as exc:
            fail("spec.url", str(exc))
        ref: Any = spec.get("ref") or {}
        if not isinstance(ref, Mapping):
            fail("spec.ref", "must be a mapping")
        selector: Any = spec.get("layerSelector") or {}
        if not isinstance(selector, Mapping):
            fail("spec.layerSelector", "must be a mapping")
        operation = text(selector, "operation", "spec.layerSelector.operation") or "extract"
        if operation not in ("extract", "copy"):
            fail("spec.layerSelector.operation", "must be extract or copy")
        result = cls(
            name=label,
            repository=repository,
            digest=text(ref, "digest", "spec.ref.digest"),
            semver=text(ref, "semver", "spec.ref.semver"),
            semver_filter=text(ref, "semverFilter", "spec.ref.semverFilter"),
            tag=text(ref, "tag", "spec.ref.tag"),
            media_type=text(selector, "mediaType", "spec.layerSelector.mediaType"),
            operation=operation,
            ignore=text(spec, "ignore", "spec.ignore") or None,
        )
        if result.semver:
            try:
                semver.Constraint.parse(result.semver)
            except semver.SemverError as exc:
                fail("spec.ref.semver", str(exc))
        return result


def _unavailable(exc: Exception) -> str | None:
    return exc.unavailable if isinstance(exc, OCIError) else None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


@dataclass(frozen=True)
class Artifact:
    """A pulled artifact on local disk."""

    revision: str
    """As source-controller reports it: `<tag>@sha256:<hex>` or `sha256:<hex>`."""
    path: Path
    """A directory (extract) or the compressed layer (copy)."""
    annotations: Mapping[str, str]
    """The manifest's annotations (`org.opencontainers.image.revision`, `.source`, ...)."""


def pull_artifact(client: RegistryClient, spec: OCIRepositorySpec) -> Artifact:
    """Resolve and pull an OCIRepository's artifact.

    Raises:
        SourceError: the reference, the registry or the layer failed; the message names the
            OCIRepository and says what failed.
    """
    try:
        reference = _reference(client, spec)
        manifest = client.manifest(spec.repository, reference)
        layer = _select_layer(manifest, spec.media_type)
        blob = client.blob(spec.repository, layer)
        path = blob if spec.operation == "copy" else unpacked(client, blob)
    except (RegistryError, OCIReferenceError, UnpackError, SourceError) as exc:
        raise SourceError(f"{spec.name}: {exc}", unavailable=_unavailable(exc)) from None
    revision = (
        manifest.digest if reference.startswith("sha256:") else f"{reference}@{manifest.digest}"
    )
    return Artifact(revision, path, manifest.annotations)


def _reference(client: RegistryClient, spec: OCIRepositorySpec) -> str:
    """The tag or digest to pull, in source-controller's order of precedence."""
    if spec.digest:
        return spec.digest
    if spec.semver:
        tags = client.tags(spec.repository)
        if spec.semver_filter:
            tags = _filtered(tags, spec.semver_filter)
        constraint = semver.Constraint.parse(spec.semver)
        versions = [v for v in map(semver.parse_tag, tags) if v is not None]
        best = semver.highest(versions, constraint)
        if best is None:
            raise SourceError(f"no match found for semver: {spec.semver}")
        return best.original
    return spec.tag or "latest"


def _filtered(tags: list[str], pattern: str) -> list[str]:
    """Keep the tags that `semverFilter` matches (RE2 syntax, as Flux's Go regexp)."""
    try:
        import re2  # type: ignore[import-untyped]

        compiled = re2.compile(pattern)
    except Exception:  # re2 raises its own error type for a bad pattern
        raise SourceError(f"invalid semverFilter {pattern[:200]!r}") from None
    return [tag for tag in tags if compiled.search(tag)]


def _select_layer(manifest: Manifest, media_type: str) -> Mapping[str, Any]:
    if not manifest.layers:
        raise SourceError("no layers found in artifact")
    if not media_type:
        return manifest.layers[0]
    for layer in manifest.layers:
        if layer.get("mediaType") == media_type:
            return layer
    raise SourceError(f"failed to find layer with media type '{media_type}' in artifact")


def unpacked(client: RegistryClient, blob: Path) -> Path:
    """Return the directory a verified blob unpacks to; done once, named by its digest."""
    target = client.cache_dir / "unpacked" / blob.name
    if target.is_dir() and mark_used(target):
        return target
    publish_directory(target, lambda scratch: unpack(blob, scratch), prefix=".unpack-")
    return target


# --------------------------------------------------------------------------------------------
# Charts in OCI HelmRepositories.


@dataclass(frozen=True)
class PulledChart:
    """A chart pulled from an OCI HelmRepository."""

    package: Path
    version: str
    """The tag that was pulled (the chart version, `_` for `+`)."""
    digest: str


def pull_chart(
    client: RegistryClient, url: str, chart: str, version: str | None, *, insecure: bool = False
) -> PulledChart:
    """Pull `chart` at `version` (a constraint, `*` when empty) from an OCI HelmRepository.

    Raises:
        SourceError: the URL, version or registry failed.
    """
    try:
        repository = parse_repository(url.rstrip("/"), insecure=insecure).child(chart)
        tag = _chart_tag(client, repository, version or "")
        manifest = client.manifest(repository, tag)
        layer = _select_layer(manifest, HELM_CHART_LAYER)
        package = client.blob(repository, layer)
    except (RegistryError, OCIReferenceError, SourceError) as exc:
        raise SourceError(
            f"chart {chart} {version or '*'} from {url}: {exc}", unavailable=_unavailable(exc)
        ) from None
    return PulledChart(package, tag.replace("_", "+"), manifest.digest)


def _chart_tag(client: RegistryClient, repository: Repository, version: str) -> str:
    exact = semver.parse_tag(version) if version else None
    if exact is not None:
        # An exact version needs no tag listing (source-controller takes the same shortcut).
        return version.replace("+", "_")
    try:
        constraint = semver.Constraint.parse(version or "*")
    except semver.SemverError as exc:
        raise SourceError(str(exc)) from None
    candidates = []
    for tag in client.tags(repository):
        parsed = semver.parse_tag(tag.replace("_", "+"))
        if parsed is not None:
            candidates.append((parsed, tag))
    best = semver.highest((v for v, _ in candidates), constraint)
    if best is None:
        raise SourceError(f"no chart version found for {repository} matching {version or '*'}")
    return next(tag for v, tag in candidates if v is best)
