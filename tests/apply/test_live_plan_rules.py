"""Planning against a cluster: what is never sent and what is withheld, on a recording port."""

from __future__ import annotations

import base64
from typing import Any

from core.changes import Action, UnitStatus
from core.cluster.port import Forbidden
from core.inventory import Inventory
from core.model import Manifest, UnitKind, UnitRef
from core.plan.live import live_after, live_before, plan_live
from core.plan.live_mask import LiveMask
from core.secrets import KnownValues, Masker
from core.units import ClusterRender, RenderedUnit
from tests.apply.fakeport import FakePort

MASKER = Masker(b"k" * 32)
MASK = LiveMask(MASKER)


def _unit(kind: UnitKind, *bodies: dict[str, Any]) -> RenderedUnit:
    manifests = [Manifest(str(b["apiVersion"]), MASKER.mask_object(dict(b))) for b in bodies]
    return RenderedUnit(UnitRef(kind, "flux-system", "apps"), True, {m.ref: m for m in manifests})


def test_secrets_are_never_sent_to_a_dry_run() -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "creds", "namespace": "apps"},
        "data": {"password": base64.b64encode(b"never-sent").decode()},
    }
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "apps"},
    }
    port = FakePort()

    after = live_after(port, _unit(UnitKind.KUSTOMIZATION, secret, config), MASK)

    assert [kind for verb, kind in port.calls if verb == "dry-run"] == ["ConfigMap"]
    assert after.objects is not None
    [masked] = [m for m in after.objects.values() if m.ref.kind == "Secret"]
    assert masked.body["type"] == "Opaque"
    assert masked.body["data"]["password"] == MASKER.token(b"never-sent")


def test_a_helm_release_is_withheld_without_asking_the_cluster() -> None:
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "apps"},
    }
    unit = _unit(UnitKind.HELM_RELEASE, config)
    port = FakePort()

    sides = (live_before(port, unit, Inventory(), MASK), live_after(port, unit, MASK))

    assert port.calls == []
    for side in sides:
        assert side.objects is None
        assert (
            side.error
            == "HelmRelease/flux-system/apps: a HelmRelease is not planned against the cluster"
        )


SUBSTITUTED = "substituted-secret-value"


def _substituting_cluster(port: FakePort, *, secret: bool = True) -> None:
    """A Kustomization that substitutes from a Secret, and an object it made with the value."""
    post_build = {"substituteFrom": [{"kind": "Secret", "name": "vars"}]}
    port.objects[("Kustomization", "flux-system", "apps")] = {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": "apps", "namespace": "flux-system"},
        "spec": {"postBuild": post_build},
    }
    if secret:
        encoded = base64.b64encode(f"{SUBSTITUTED}\n".encode()).decode()
        port.objects[("Secret", "flux-system", "vars")] = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "vars", "namespace": "flux-system"},
            "data": {"PASSWORD": encoded},
        }
    port.objects[("ConfigMap", "apps", "old")] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "old",
            "namespace": "apps",
            "annotations": {f"note-{SUBSTITUTED}": "key made from it"},
        },
        "data": {"url": f"postgres://app:{SUBSTITUTED}@db", "plain": "kept"},
    }


def _old_inventory() -> Inventory:
    return Inventory.from_status(
        {"inventory": {"entries": [{"id": "apps_old__ConfigMap", "v": "v1"}]}}
    )


def test_a_deleted_object_shows_no_value_substituted_from_a_secret() -> None:
    port = FakePort()
    _substituting_cluster(port)
    known = KnownValues()
    masker = Masker(b"k" * 32, known=known)
    head = _unit(UnitKind.KUSTOMIZATION)  # the object left Git: nothing says where its value is

    plan = plan_live(
        port,
        ClusterRender("clusters/test", {head.unit: head}),
        {head.unit: _old_inventory()},
        masker,
    )

    [unit] = plan.units
    [change] = unit.changes
    assert change.action is Action.DELETE
    shown = repr(plan) + change.diff
    assert SUBSTITUTED not in shown
    assert SUBSTITUTED.upper() not in shown
    assert "kept" in change.diff  # only strings holding the value are masked
    # And free text (an error quoting it) is scrubbed of it too.
    assert SUBSTITUTED not in known.scrub(f"error near {SUBSTITUTED}")


def test_a_secret_that_cannot_be_read_fails_the_unit_instead_of_showing_it() -> None:
    port = FakePort()
    _substituting_cluster(port, secret=False)
    original = port.get

    def forbidden(api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any]:
        if kind == "Secret":
            raise Forbidden("secrets is forbidden", status=403, reason="Forbidden")
        return original(api_version, kind, namespace, name)

    port.get = forbidden  # type: ignore[method-assign]
    head = _unit(UnitKind.KUSTOMIZATION)

    plan = plan_live(
        port,
        ClusterRender("clusters/test", {head.unit: head}),
        {head.unit: _old_inventory()},
        MASKER,
    )

    [unit] = plan.units
    assert unit.status is UnitStatus.FAILED
    assert unit.changes == ()
    assert unit.error is not None
    assert "cannot read what it substitutes from" in unit.error
    assert SUBSTITUTED not in repr(plan)
