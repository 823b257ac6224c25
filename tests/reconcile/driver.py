"""Drive `reconcile_kustomization` against the real control plane, as the loop does.

`Driver.reconcile` reads the Kustomization, runs the pipeline once and writes the outcome the way
the controller does: the finalizer as a merge patch of `metadata.finalizers`, the status through
the status subresource. `Driver.converge` runs every Kustomization of a namespace in rounds until
each is Ready (or the rounds run out), which is what the work queue achieves with requeues.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from core.cluster.fluxobjects import LiveCluster as FluxObjects
from reconciler.kustomization.deps import Deps
from reconciler.kustomization.model import FINALIZER, FinalizerChange, Outcome
from reconciler.pipeline import reconcile_kustomization
from reconciler.status_writer import write_status

__all__ = ["Driver"]

GROUP, VERSION, PLURAL = "kustomize.toolkit.fluxcd.io", "v1", "kustomizations"


class Driver:
    """Run the pipeline for Kustomizations and write what it says, as the controller does."""

    def __init__(self, kube_client: Any, deps: Deps) -> None:
        self.custom = k8s.CustomObjectsApi(kube_client)
        self.flux = FluxObjects(kube_client)
        self.deps = deps
        self.outcomes: list[tuple[str, Outcome]] = []

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name
        )
        return found

    def reconcile(self, namespace: str, name: str) -> Outcome:
        obj = self.get(namespace, name)
        outcome = reconcile_kustomization(obj, self.deps)
        self.outcomes.append((f"{namespace}/{name}", outcome))
        finalizers = list(obj["metadata"].get("finalizers") or [])
        if outcome.finalizer is FinalizerChange.ADD:
            self._finalizers(namespace, name, [*finalizers, FINALIZER])
        if outcome.status is not None:
            write_status(self.flux, obj, outcome.status)
        if outcome.finalizer is FinalizerChange.REMOVE:
            self._finalizers(namespace, name, [f for f in finalizers if f != FINALIZER])
        return outcome

    def _finalizers(self, namespace: str, name: str, finalizers: Sequence[str]) -> None:
        try:
            self.custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, {"metadata": {"finalizers": finalizers}}
            )
        except ApiException as exc:
            if exc.status != 404:
                raise

    def names(self, namespace: str) -> list[str]:
        listed = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
        return sorted(item["metadata"]["name"] for item in listed["items"])

    def converge(self, namespace: str, *, rounds: int = 6) -> dict[str, Outcome]:
        """Reconcile every Kustomization of `namespace` in rounds until all are Ready."""
        last: dict[str, Outcome] = {}
        for _ in range(rounds):
            for name in self.names(namespace):
                last[name] = self.reconcile(namespace, name)
            settled = set(last) == set(self.names(namespace))
            if settled and all(outcome.ready for outcome in last.values()):
                break
        return last
