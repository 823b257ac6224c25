"""The apply engine's writes: concurrent within a kind, kind after kind, every failure named.

On a recording port of our own; the real control plane's side is in tests/cluster.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import pytest

from core.cleartext import Clear
from core.cluster.port import Forbidden, Invalid
from reconciler.apply import ApplyError, Options, Owner, apply_objects
from tests.apply.fakeport import FakePort

OWNER = Owner("apps", "flux-system")


def _object(kind: str, name: str, api_version: str = "v1") -> Clear:
    body = {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "namespace": "apps"},
    }
    return Clear(body, None)


def _name(body: Mapping[str, Any]) -> str:
    return str(body["metadata"]["name"])


def test_the_objects_of_one_kind_are_written_concurrently() -> None:
    # Each write waits until four are in flight: one-at-a-time writes would break the barrier.
    barrier = threading.Barrier(4, timeout=60)

    def meet(_: Mapping[str, Any]) -> None:
        barrier.wait()

    port = FakePort(on_apply=meet)

    result = apply_objects(port, [_object("ConfigMap", f"cm-{i}") for i in range(4)], owner=OWNER)

    assert [str(e) for e in result.entries] == [f"ConfigMap/apps/cm-{i} created" for i in range(4)]


def test_every_object_of_a_kind_is_written_before_any_of_the_next_kind() -> None:
    # A ServiceAccount must exist before the Pod that runs as it is admitted: Flux's kind order
    # holds between kinds even though the writes of one kind overlap.
    events: list[tuple[str, str]] = []
    lock = threading.Lock()

    def record(body: Mapping[str, Any]) -> None:
        with lock:
            events.append(("start", str(body["kind"])))
        # Let the others of its kind start too before this one ends.
        threading.Event().wait(0.01)
        with lock:
            events.append(("end", str(body["kind"])))

    port = FakePort(on_apply=record)
    objects = [_object("Pod", f"p-{i}") for i in range(4)]
    objects += [_object("ServiceAccount", f"sa-{i}") for i in range(4)]

    result = apply_objects(port, objects, owner=OWNER)

    last_account_end = max(i for i, e in enumerate(events) if e == ("end", "ServiceAccount"))
    first_pod_start = events.index(("start", "Pod"))
    assert last_account_end < first_pod_start
    assert [str(e) for e in result.entries] == [
        *(f"ServiceAccount/apps/sa-{i} created" for i in range(4)),
        *(f"Pod/apps/p-{i} created" for i in range(4)),
    ]


def test_the_change_set_keeps_flux_order_whatever_order_the_writes_end_in() -> None:
    # cm-0's write is held until cm-3's has ended, so the writes end out of order.
    last_done = threading.Event()

    def hold(body: Mapping[str, Any]) -> None:
        if _name(body) == "cm-0":
            assert last_done.wait(60)
        if _name(body) == "cm-3":
            last_done.set()

    port = FakePort(on_apply=hold)

    result = apply_objects(port, [_object("ConfigMap", f"cm-{i}") for i in range(4)], owner=OWNER)

    assert [str(e) for e in result.entries] == [f"ConfigMap/apps/cm-{i} created" for i in range(4)]


def test_failed_writes_are_each_named_and_stop_the_kinds_after_them() -> None:
    # All three writes are in flight before any ends, so both failures happen.
    barrier = threading.Barrier(3, timeout=60)

    def refuse(body: Mapping[str, Any]) -> None:
        if body["kind"] == "ConfigMap":
            barrier.wait()
        if _name(body) == "cm-1":
            raise Invalid("ConfigMap/apps/cm-1: refused", detail="data too large", fields=("data",))
        if _name(body) == "cm-2":
            raise Forbidden("ConfigMap/apps/cm-2: forbidden", reason="Forbidden", detail="no")

    port = FakePort(on_apply=refuse)
    objects = [_object("ConfigMap", f"cm-{i}") for i in range(3)]
    objects.append(_object("Deployment", "web", "apps/v1"))

    with pytest.raises(ApplyError) as raised:
        apply_objects(port, objects, owner=OWNER)

    error = raised.value
    assert str(error).splitlines() == [
        "ConfigMap/apps/cm-1 apply failed (Invalid): data too large",
        "ConfigMap/apps/cm-2 apply failed (Forbidden): no",
    ]
    assert str(error.ref) == "ConfigMap/apps/cm-1"
    assert error.fields == ("data",)
    # The write that succeeded is reported; the failed ones and the next kind are not.
    assert [str(e) for e in error.change_set.entries] == ["ConfigMap/apps/cm-0 created"]
    assert not error.change_set.complete
    assert ("apply", "Deployment") not in port.calls


def test_no_write_of_a_kind_starts_after_one_of_it_failed() -> None:
    # One writer at a time, so which writes had started when cm-1 failed is certain.
    def refuse(body: Mapping[str, Any]) -> None:
        if _name(body) == "cm-1":
            raise Invalid("ConfigMap/apps/cm-1: refused", detail="bad")

    port = FakePort(on_apply=refuse)
    objects = [_object("ConfigMap", f"cm-{i}") for i in range(6)]

    with pytest.raises(ApplyError) as raised:
        apply_objects(port, objects, owner=OWNER, options=Options(concurrency=1))

    assert str(raised.value) == "ConfigMap/apps/cm-1 apply failed (Invalid): bad"
    assert [call for call in port.calls if call[0] == "apply"] == [("apply", "ConfigMap")] * 2
    assert [str(e) for e in raised.value.change_set.entries] == ["ConfigMap/apps/cm-0 created"]
