"""The apply engine's order and concurrency, on a recording port of our own."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from core.cleartext import Clear
from core.cluster.port import Invalid
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


def test_a_new_object_is_created_without_a_read() -> None:
    port = FakePort()

    result = apply_objects(port, [_config_map("a"), _config_map("b")], owner=OWNER)

    assert [str(e) for e in result.entries] == [
        "ConfigMap/apps/a created",
        "ConfigMap/apps/b created",
    ]
    assert sorted(port.calls) == [
        ("apply", "ConfigMap"),
        ("apply", "ConfigMap"),
        ("dry-run", "ConfigMap"),
        ("dry-run", "ConfigMap"),
    ]


def test_an_existing_object_the_owner_does_not_list_is_read_and_judged_by_its_live_marks() -> None:
    # The owner's list misses it, its dry run fails, but the live object says "ssa: Ignore":
    # it is skipped, as when it was read before its dry run.
    def refuse(_: Mapping[str, Any]) -> None:
        raise Invalid("ConfigMap/apps/a: refused", fields=("data",))

    port = FakePort(on_dry_run=refuse)
    port.objects[("ConfigMap", "apps", "a")] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "a",
            "namespace": "apps",
            "resourceVersion": "1",
            "annotations": {"kustomize.toolkit.fluxcd.io/ssa": "Ignore"},
        },
    }

    result = apply_objects(port, [_config_map("a")], owner=OWNER)

    assert [str(e) for e in result.entries] == ["ConfigMap/apps/a skipped"]
    assert port.calls == [("dry-run", "ConfigMap"), ("get", "ConfigMap")]
