"""The source step: find the Kustomization's `sourceRef` and the artifact it currently offers.

As kustomize-controller: only `status.artifact` of the source counts, not its Ready condition, so
a Git outage (the source Ready=False but still serving its last artifact) does not stop drift
correction. A missing source is `ArtifactFailed` retried after `retryInterval`; a source without
an artifact is `ArtifactFailed` retried after `--requeue-dependency`; a reference to another
namespace under `--no-cross-namespace-refs` is `AccessDenied` and terminal. GitRepository and
OCIRepository (`source.toolkit.fluxcd.io/v1`) are supported. Reads only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.units import SourceRef
from reconciler.kustomization.deps import ObjectReader
from reconciler.kustomization.model import Reason, StepFailed
from reconciler.status import go_duration

__all__ = ["SUPPORTED_KINDS", "Artifact", "resolve_artifact"]

SOURCE_API = "source.toolkit.fluxcd.io/v1"
SUPPORTED_KINDS = ("GitRepository", "OCIRepository")


@dataclass(frozen=True)
class Artifact:
    """The source's current artifact."""

    url: str
    digest: str
    revision: str
    origin_revision: str | None = None


def resolve_artifact(
    owner_namespace: str,
    source: SourceRef,
    reader: ObjectReader,
    *,
    no_cross_namespace_refs: bool,
    retry_interval: float,
    requeue_dependency: float,
) -> Artifact:
    """The artifact to reconcile, or `StepFailed` with Flux's reason and message."""
    if no_cross_namespace_refs and source.namespace != owner_namespace:
        raise StepFailed(
            Reason.ACCESS_DENIED,
            f"cannot access {source}, cross-namespace references have been disabled",
            terminal=True,
        )
    if source.kind not in SUPPORTED_KINDS:
        raise StepFailed(
            Reason.ARTIFACT_FAILED,
            f"source '{source}' is not supported: the sourceRef kind must be one of "
            f"{', '.join(SUPPORTED_KINDS)}",
            terminal=True,
        )
    found = reader.get(SOURCE_API, source.kind, source.namespace, source.name)
    if found is None:
        raise StepFailed(
            Reason.ARTIFACT_FAILED,
            f"Source '{source}' not found",
            requeue_after=retry_interval,
        )
    artifact = _artifact(found)
    if artifact is None:
        raise StepFailed(
            Reason.ARTIFACT_FAILED,
            f"Source artifact not found, retrying in {go_duration(requeue_dependency)}",
            requeue_after=requeue_dependency,
        )
    return artifact


def _artifact(source: Mapping[str, Any]) -> Artifact | None:
    artifact = (source.get("status") or {}).get("artifact")
    if not isinstance(artifact, Mapping):
        return None
    url, revision = artifact.get("url"), artifact.get("revision")
    if not isinstance(url, str) or not url or not isinstance(revision, str) or not revision:
        return None
    metadata = artifact.get("metadata") or {}
    origin = (
        metadata.get("org.opencontainers.image.revision") if isinstance(metadata, Mapping) else None
    )
    return Artifact(
        url=url,
        digest=str(artifact.get("digest") or ""),
        revision=revision,
        origin_revision=str(origin) if origin else None,
    )
