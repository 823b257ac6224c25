"""Flux's inventory entries: ids, versions, order and the prune diff."""

from __future__ import annotations

import pytest

from core.errors import InputError
from core.inventory import Entry, Inventory, parse_id, sort_key
from core.model import ObjectRef


@pytest.mark.parametrize(
    ("entry_id", "ref"),
    [
        ("default_podinfo__Service", ObjectRef("", "Service", "default", "podinfo")),
        ("default_podinfo_apps_Deployment", ObjectRef("apps", "Deployment", "default", "podinfo")),
        ("_my-ns__Namespace", ObjectRef("", "Namespace", "", "my-ns")),
        (
            "_system__controller__kube-proxy_rbac.authorization.k8s.io_ClusterRole",
            ObjectRef(
                "rbac.authorization.k8s.io", "ClusterRole", "", "system:controller:kube-proxy"
            ),
        ),
        (
            "apps_web_autoscaling_HorizontalPodAutoscaler",
            ObjectRef("autoscaling", "HorizontalPodAutoscaler", "apps", "web"),
        ),
    ],
)
def test_ids_parse_as_cli_utils_reads_them_and_format_back(entry_id: str, ref: ObjectRef) -> None:
    assert parse_id(entry_id) == ref
    assert ref.inventory_id == entry_id


@pytest.mark.parametrize(
    "entry_id", ["", "nonsense", "a_b", "a_b_c", "ns__apps_Deployment", "ns_na_me_apps_Deployment"]
)
def test_malformed_ids_are_errors_naming_the_entry(entry_id: str) -> None:
    with pytest.raises(InputError, match="inventory entry"):
        parse_id(entry_id)


def test_status_round_trips_and_keeps_change_set_order() -> None:
    status = {
        "inventory": {
            "entries": [
                {"id": "apps_web_apps_Deployment", "v": "v1"},
                {"id": "_apps__Namespace", "v": "v1"},
                {"id": "apps_web_autoscaling_HorizontalPodAutoscaler", "v": "v2"},
                {"id": "apps_web_apps_Deployment", "v": "v1"},
            ]
        }
    }

    inventory = Inventory.from_status(status)

    assert inventory.to_status() == {"entries": status["inventory"]["entries"][:3]}
    assert inventory.entries[2].api_version == "autoscaling/v2"
    assert inventory.entries[1].api_version == "v1"
    assert Inventory.from_status({}) == Inventory()
    assert Inventory.from_status(None).to_status() == {"entries": []}


@pytest.mark.parametrize(
    ("status", "message"),
    [
        ({"inventory": "x"}, "status.inventory: not an object"),
        ({"inventory": {"entries": "x"}}, "status.inventory.entries: not a list"),
        ({"inventory": {"entries": [{"v": "v1"}]}}, r"entries\[0\]: no id"),
        ({"inventory": {"entries": [{"id": "a_b__C"}]}}, r"entries\[0\] \(a_b__C\): no v"),
        ({"inventory": {"entries": [{"id": "bad", "v": "v1"}]}}, "inventory entry 'bad'"),
    ],
)
def test_a_malformed_status_inventory_is_an_error(status: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        Inventory.from_status(status)


def _entry(entry_id: str, version: str = "v1") -> Entry:
    return Entry(parse_id(entry_id), version)


def test_stale_entries_come_in_flux_kind_order_and_survivors_merge_back() -> None:
    old = Inventory.of(
        _entry(i)
        for i in (
            "apps_web_apps_Deployment",
            "_apps__Namespace",
            "_hook_admissionregistration.k8s.io_ValidatingWebhookConfiguration",
            "apps_web__Service",
            "apps_x_example.com_Widget",
            "_widgets.example.com_apiextensions.k8s.io_CustomResourceDefinition",
            "apps_keep__ConfigMap",
        )
    )
    new = Inventory.of([_entry("apps_keep__ConfigMap")])

    stale = old.stale(new)

    assert [e.ref.kind for e in stale] == [
        "CustomResourceDefinition",
        "Namespace",
        "Service",
        "Deployment",
        "Widget",
        "ValidatingWebhookConfiguration",
    ]
    merged = new.merged([stale[0], _entry("apps_keep__ConfigMap")])
    assert [e.id for e in merged.entries] == [
        "apps_keep__ConfigMap",
        "_widgets.example.com_apiextensions.k8s.io_CustomResourceDefinition",
    ]


def test_unlisted_kinds_sort_by_group_then_kind_then_namespace_and_name() -> None:
    refs = [
        ObjectRef("b.example", "Alpha", "ns", "a"),
        ObjectRef("a.example", "Zulu", "ns", "b"),
        ObjectRef("a.example", "Zulu", "another", "c"),
        ObjectRef("", "Secret", "ns", "s"),
    ]

    assert [r.name for r in sorted(refs, key=sort_key)] == ["s", "c", "b", "a"]
