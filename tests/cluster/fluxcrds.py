"""Minimal Flux CRDs (same group, version, kind, plural and status subresource as Flux's).

Enough for clients that read and patch Flux objects; the schema keeps unknown fields, so the
objects look to a client exactly as Flux's would.
"""

from __future__ import annotations

from typing import Any

from tests.cluster.kube import apply, eventually

__all__ = ["install_flux_crds"]

_KINDS = (
    ("kustomize.toolkit.fluxcd.io", "Kustomization", "kustomizations", "ks"),
    ("source.toolkit.fluxcd.io", "GitRepository", "gitrepositories", "gitrepo"),
)


def _crd(group: str, kind: str, plural: str, short: str) -> dict[str, Any]:
    open_object = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": [short],
            },
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {"spec": open_object, "status": open_object},
                        }
                    },
                }
            ],
        },
    }


def install_flux_crds(dynamic: Any) -> None:
    """Apply the CRDs (idempotent) and wait until both are Established."""
    for group, kind, plural, short in _KINDS:
        apply(dynamic, _crd(group, kind, plural, short))
    crds = dynamic.resources.get(
        api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition"
    )

    def established() -> bool:
        for group, _, plural, _ in _KINDS:
            crd = crds.get(name=f"{plural}.{group}").to_dict()
            conditions = (crd.get("status") or {}).get("conditions") or []
            if not any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                return False
        return True

    eventually(established, "the Flux CRDs to be Established")
    dynamic.resources.invalidate_cache()
