"""The apply engine's order and concurrency, on a recording port of our own."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from core.cleartext import Clear
from reconciler.apply import Options, Owner, apply_objects
from tests.apply.fakeport import FakePort

OWNER = Owner("apps", "flux-system")


def _config_map(name: str) -> Clear:
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "apps"},
        "data": {"a": "1"},
    }
    return Clear(body, None)


def test_a_stage_is_dry_run_concurrently_before_anything_is_written() -> None:
    # Each dry run waits until four are in flight at once: sequential dry runs would never
    # get there and break the barrier instead.
    barrier = threading.Barrier(4, timeout=60)

    def meet(_: Mapping[str, Any]) -> None:
        barrier.wait()

    port = FakePort(on_dry_run=meet)

    result = apply_objects(
        port, [_config_map(f"cm-{i}") for i in range(4)], owner=OWNER, options=Options()
    )

    assert len(result.changed) == 4
    verbs = [verb for verb, _ in port.calls]
    assert verbs.index("apply") > max(i for i, verb in enumerate(verbs) if verb == "dry-run")


def test_stages_run_definitions_then_classes_then_the_rest() -> None:
    port = FakePort()
    objects = [
        Clear(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "d", "namespace": "apps"},
            },
            None,
        ),
        Clear(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "IngressClass",
                "metadata": {"name": "c"},
            },
            None,
        ),
        Clear(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": "r"},
            },
            None,
        ),
        _config_map("cm"),
        Clear({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps"}}, None),
    ]

    result = apply_objects(port, objects, owner=OWNER, options=Options(poll=0.01))

    assert [str(e) for e in result.entries] == [
        "Namespace/apps created",
        "ClusterRole/r created",
        "IngressClass/c created",
        "ConfigMap/apps/cm created",
        "Deployment/apps/d created",
    ]
    writes = [kind for verb, kind in port.calls if verb == "apply"]
    assert writes == ["Namespace", "ClusterRole", "IngressClass", "ConfigMap", "Deployment"]
