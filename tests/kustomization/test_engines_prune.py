"""`LiveEngines.prune` hands the prune engine this run's apply change set, over a fake port.

The prune engine refuses a change set that is not complete; the engines must give it the
apply's own, so that rule holds even when the pipeline's own check is bypassed.
"""

from __future__ import annotations

from typing import Any, cast

from core.inventory import parse_id
from reconciler.changeset import Action, ChangeSet, ChangeSetEntry
from reconciler.kustomization.deps import Applied, Owner
from reconciler.kustomization.engines import LiveEngines
from reconciler.kustomization.model import InventoryEntry
from tests.apply.fakeport import FakePort

OWNER = Owner("apps", "flux-system")
STALE = InventoryEntry("apps_old__ConfigMap", "v1")


def _port_with_stale() -> FakePort:
    port = FakePort()
    port.objects[("ConfigMap", "apps", "old")] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "old",
            "namespace": "apps",
            "labels": {
                "kustomize.toolkit.fluxcd.io/name": "apps",
                "kustomize.toolkit.fluxcd.io/namespace": "flux-system",
            },
        },
    }
    return port


def _kept() -> ChangeSetEntry:
    ref = parse_id("apps_kept__ConfigMap")
    return ChangeSetEntry(ref, "v1", Action.UNCHANGED)


def _prune(port: FakePort, applied: Applied) -> Any:
    engines = LiveEngines(cast(Any, port))
    return engines.prune([STALE], applied=applied, owner=OWNER, service_account=None)


def test_a_complete_apply_lets_prune_delete_the_stale_object() -> None:
    port = _port_with_stale()
    done = ChangeSet([_kept()], complete=True)

    pruned = _prune(port, Applied((), (), change_set=done))

    assert pruned.error is None
    assert [(c.subject, c.action) for c in pruned.changes] == [("ConfigMap/apps/old", "deleted")]
    assert ("ConfigMap", "apps", "old") not in port.objects


def test_an_incomplete_apply_is_refused_by_the_prune_engine_and_deletes_nothing() -> None:
    port = _port_with_stale()
    stopped = ChangeSet([_kept()], complete=False)

    pruned = _prune(port, Applied((), (), change_set=stopped))

    assert pruned.error == "prune refused: the apply did not complete, so nothing is deleted"
    assert pruned.changes == ()
    assert pruned.survivors == (STALE,)
    assert ("ConfigMap", "apps", "old") in port.objects
    assert ("delete", "ConfigMap") not in port.calls


def test_an_apply_without_a_change_set_is_not_taken_as_complete() -> None:
    port = _port_with_stale()

    pruned = _prune(port, Applied((), ()))

    assert pruned.error is not None
    assert pruned.survivors == (STALE,)
    assert ("ConfigMap", "apps", "old") in port.objects
