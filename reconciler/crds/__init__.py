"""The CustomResourceDefinitions of the Flux APIs the reconciler serves, shipped as YAML.

`GitRepository` (`source.toolkit.fluxcd.io/v1`) and `Kustomization`
(`kustomize.toolkit.fluxcd.io/v1`) carry Flux's names, short names, status subresource and printer
columns, so `kubectl get ks`, `kubectl wait` and kstatus-based tools read them as Flux's. The same
files are in the Helm chart (charts/tidegate/crds). This module only reads the package's files; it
never talks to a cluster.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from core import yamlio

__all__ = ["FILES", "documents"]

FILES = ("gitrepositories.yaml", "kustomizations.yaml")


def documents() -> list[dict[str, Any]]:
    """The CRDs as parsed objects, GitRepository first."""
    found = []
    for name in FILES:
        text = resources.files(__package__).joinpath(name).read_text()
        found.append(dict(yamlio.load(text)))
    return found
