"""The build step: the Kustomization's objects in cleartext, exactly as the preview renders them.

It calls the shared engine's cleartext build (`core.render.clear`, through the apply module, the
only one allowed to hold cleartext types: the same kustomize run, spec merge, substitution and
ownership labels as `tidegate preview`), so what is applied is what the preview showed.
Failures are `BuildFailed` with the engine's message, already scrubbed of the Secret values the
build was given. The result holds cleartext objects for the apply step only:
this module never logs, formats or returns them in any other form, and its digest (for
`status.history`, as Flux's digest of the built YAML) is a one-way hash.

kustomize's output is remembered for the life of the process (`core.render.memo`: in memory,
bounded, never output that may hold a Secret), so reconciling an unchanged revision again
skips the kustomize run; everything after it runs every time. The memo is keyed by the
artifact's digest (checked when it was downloaded; its unpacked files never change under it), so
a reconcile hashes no file of it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import TidegateError
from core.host.files import DirectorySource
from core.render.memo import BuildMemo
from core.units import KustomizationSpec
from reconciler.apply import build as build_cleartext
from reconciler.health import ObjectRef, jobs_with_ttl
from reconciler.kustomization.model import Reason, StepFailed
from reconciler.kustomization.variables import Variables

__all__ = ["MEMO", "Built", "build"]

MEMO = BuildMemo()
"""kustomize's output by input digest, shared by every reconcile of this process."""


@dataclass(frozen=True, eq=False)
class Built:
    """The objects to apply (cleartext, for the apply step only) and the build's digest."""

    objects: Sequence[Any]
    """`core.cleartext.Clear` objects, named by no one here (the import contract)."""
    digest: str
    self_deleting: frozenset[ObjectRef] = frozenset()
    """Jobs with `ttlSecondsAfterFinished`: once gone they count as healthy."""

    def __repr__(self) -> str:
        return f"Built({len(self.objects)} objects, {self.digest})"


def build(
    spec: KustomizationSpec,
    tree: Path,
    variables: Variables,
    *,
    artifact_digest: str,
    kustomize: Path,
    work_root: Path | None,
) -> Built:
    """Build `spec` from `tree`, the unpacked artifact of `artifact_digest`.

    Raises:
        StepFailed: (BuildFailed) on any error.
    """
    try:
        rendered = build_cleartext(
            spec,
            DirectorySource(tree),
            kustomize_bin=kustomize,
            variables=variables.values,
            secret_values=variables.secret_values,
            work_root=work_root,
            memo=MEMO,
            source_digest=artifact_digest,
        )
    except TidegateError as exc:
        raise StepFailed(Reason.BUILD_FAILED, str(exc)) from None
    bodies = [clear.body for clear in rendered.objects]
    return Built(rendered.objects, _digest(bodies), jobs_with_ttl(bodies))


def _digest(bodies: Sequence[Any]) -> str:
    hasher = hashlib.sha256()
    for body in bodies:
        hasher.update(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
        hasher.update(b"\n---\n")
    return f"sha256:{hasher.hexdigest()}"
