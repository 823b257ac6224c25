"""Build one Flux Kustomization in cleartext, for applying it: the apply path's only renderer.

The preview renders through `core.render.unit`, which masks every object at its boundary and caches
the masked result. Applying needs the real values, so this module builds the same Kustomization
with the same renderer (`core.render.kustomize`, so the objects are the ones the preview showed)
but never touches the render cache, and hands back `Clear` objects that only the apply path may
hold. Masking them (`Clear.masked`) gives exactly what a preview of the same inputs shows.

Its error messages are scrubbed of the Secret values it was given (the `substituteFrom` Secrets
read from the cluster), so a failure can go into a condition, an event or a log. It must never
log, cache or return a value in any other form than a `Clear` object.
"""

from __future__ import annotations

import tempfile
from collections.abc import Collection, Mapping
from pathlib import Path

from core.errors import TidegateError
from core.host.command import DEFAULT_LIMITS, Limits
from core.host.files import FileSource
from core.host.sandbox import Sandbox
from core.render import kustomize
from core.render.memo import BuildMemo
from core.secrets import KnownValues
from core.units import KustomizationSpec

__all__ = ["build_kustomization"]


def build_kustomization(
    spec: KustomizationSpec,
    source: FileSource,
    *,
    kustomize_bin: Path,
    variables: Mapping[str, str] | None,
    secret_values: Mapping[str, str] | None = None,
    work_root: Path | None = None,
    limits: Limits = DEFAULT_LIMITS,
    allowed_remotes: Collection[str] = (),
    sandbox: Sandbox | None = None,
    memo: BuildMemo | None = None,
    source_digest: str | None = None,
) -> kustomize.Rendered:
    """Build `spec` from `source` in cleartext, uncached.

    Args:
        spec: The Kustomization.
        source: The artifact its sourceRef points at.
        kustomize_bin: The kustomize binary.
        variables: postBuild variables, inline and substituteFrom merged (None: no substitution).
        secret_values: The variables among `variables` that came from Secrets, with their values,
            so that substitution records where they land and errors never quote them.
        work_root: Where the private work directory goes (the temporary directory if None).
        limits: Time and memory bound of kustomize.
        allowed_remotes: URL prefixes of remote bases that may be used.
        sandbox: Confinement of kustomize (the operator's setting if None).
        memo: kustomize's output kept across builds (`core.render.memo`: in memory, never a
            Secret); None runs kustomize every time.
        source_digest: The verified digest of the artifact `source` holds, which keys `memo`
            without hashing its files (see `kustomize.render_kustomization`).

    Raises:
        TidegateError: the build failed; the message holds none of the `secret_values`.
    """
    known = KnownValues()
    for value in (secret_values or {}).values():
        known.add(value.encode())
    try:
        with tempfile.TemporaryDirectory(prefix="tidegate-apply-", dir=work_root) as workdir:
            return kustomize.render_kustomization(
                spec,
                source,
                kustomize=kustomize_bin,
                workdir=Path(workdir),
                variables=variables,
                secret_variables=frozenset(secret_values or {}),
                limits=limits,
                allowed_remotes=allowed_remotes,
                sandbox=sandbox,
                memo=memo,
                source_digest=source_digest,
            )
    except TidegateError as exc:
        raise exc.reworded(known.scrub(str(exc))) from None
