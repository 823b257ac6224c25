"""Planning against a cluster: what is never sent and what is withheld, on a recording port."""

from __future__ import annotations

import base64
from typing import Any

from core.inventory import Inventory
from core.model import Manifest, UnitKind, UnitRef
from core.plan.live import live_after, live_before
from core.secrets import Masker
from core.units import RenderedUnit
from tests.apply.fakeport import FakePort

MASKER = Masker(b"k" * 32)


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

    after = live_after(port, _unit(UnitKind.KUSTOMIZATION, secret, config), MASKER)

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

    sides = (live_before(port, unit, Inventory(), MASKER), live_after(port, unit, MASKER))

    assert port.calls == []
    for side in sides:
        assert side.objects is None
        assert (
            side.error
            == "HelmRelease/flux-system/apps: a HelmRelease is not planned against the cluster"
        )
