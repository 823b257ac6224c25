"""`spec.ignore` rules: parsing, Flux's selector semantics and the pointer arithmetic."""

from __future__ import annotations

from typing import Any

import pytest

from core.errors import InputError
from reconciler.drift_ignore import parse_rules, pointers_for, value_at, without
from reconciler.kustomization.spec import read_spec


def _obj(kind: str = "Deployment", name: str = "web", **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1" if kind == "Deployment" else "v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": "apps", **meta},
        "spec": {"replicas": 3, "template": {"metadata": {"annotations": {"a/b": "1"}}}},
    }


def test_a_rule_without_target_covers_every_object() -> None:
    rules = parse_rules([{"paths": ["/spec/replicas"]}], "ks")
    assert pointers_for(rules, _obj("ConfigMap")) == (("spec", "replicas"),)


@pytest.mark.parametrize(
    ("target", "selected"),
    [
        ({"kind": "Deployment"}, True),
        ({"kind": "Deploy"}, False),  # anchored at both ends, as Flux anchors its regexes
        ({"kind": "Deploy.*"}, True),
        ({"group": "apps", "version": "v1"}, True),
        ({"group": "^$"}, False),
        ({"name": "web|api", "namespace": "apps"}, True),
        ({"labelSelector": "tier=front"}, True),
        ({"labelSelector": "tier in (front, back),!canary"}, True),
        ({"labelSelector": "tier notin (front)"}, False),
        ({"labelSelector": "tier!=front"}, False),
        ({"labelSelector": "canary"}, False),
        ({"annotationSelector": "autoscaled=true"}, True),
        ({"annotationSelector": "autoscaled=false"}, False),
    ],
)
def test_targets_select_as_flux_selectors_do(target: dict[str, str], selected: bool) -> None:
    rules = parse_rules([{"paths": ["/spec/replicas"], "target": target}], "ks")
    obj = _obj(labels={"tier": "front"}, annotations={"autoscaled": "true"})
    assert bool(pointers_for(rules, obj)) is selected


def test_pointers_unescape_and_remove_only_what_is_there() -> None:
    rules = parse_rules(
        [{"paths": ["/spec/template/metadata/annotations/a~1b", "/spec/missing/deep"]}], "ks"
    )
    pointers = pointers_for(rules, _obj())
    assert pointers[0] == ("spec", "template", "metadata", "annotations", "a/b")
    stripped = without(_obj(), pointers)
    assert stripped["spec"]["template"]["metadata"]["annotations"] == {}
    assert stripped["spec"]["replicas"] == 3
    assert value_at({"items": [{"x": 1}]}, ("items", "0", "x")) == (True, 1)
    assert value_at({"items": []}, ("items", "0")) == (False, None)


@pytest.mark.parametrize(
    ("rules", "field"),
    [
        ({"paths": ["/a"]}, "spec.ignore"),
        ([{"target": {"kind": "Deployment"}}], "spec.ignore[0].paths"),
        ([{"paths": ["spec/replicas"]}], "spec.ignore[0].paths[0]"),
        ([{"paths": ["/a", "/b~2"]}], "spec.ignore[0].paths[1]"),
        ([{"paths": ["/a"], "target": {"kind": "Deploy(ment"}}], "spec.ignore[0].target.kind"),
        ([{"paths": ["/a"], "target": {"name": "(a+)+\\1"}}], "spec.ignore[0].target.name"),
        (
            [{"paths": ["/a"], "target": {"labelSelector": "a in b"}}],
            "spec.ignore[0].target.labelSelector",
        ),
        ([{"paths": ["/a"], "target": "Deployment"}], "spec.ignore[0].target"),
    ],
)
def test_a_bad_rule_is_refused_naming_its_field(rules: Any, field: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_rules(rules, "Kustomization/flux-system/apps")
    assert caught.value.field == field
    assert "Kustomization/flux-system/apps" in str(caught.value)


def test_read_spec_reads_the_ignore_rules() -> None:
    obj = {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": "apps", "namespace": "flux-system"},
        "spec": {
            "interval": "5m",
            "prune": True,
            "path": "./apps",
            "sourceRef": {"kind": "GitRepository", "name": "repo"},
            "ignore": [{"paths": ["/spec/replicas"], "target": {"kind": "Deployment"}}],
        },
    }
    spec = read_spec(obj)
    assert pointers_for(spec.ignore, _obj()) == (("spec", "replicas"),)
    assert pointers_for(spec.ignore, _obj("ConfigMap")) == ()
