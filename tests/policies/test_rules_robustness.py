"""The built-in rules survive hostile shapes and never quote a Secret value.

Bodies and options are written by the pull request, so every rule must skip what it does not
understand rather than raise (a raising rule fails the gate as `rule-error`). And findings are
built from masked objects only: a canary planted in a Secret never reaches a message.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from core.changes import Action, UnitStatus
from core.model import ObjectRef, UnitKind, UnitRef, group_of
from policies.evaluate import RULE_ERROR, evaluate
from policies.fixtures import evaluate_case, load_case
from policies.input import ChangeInput, Operation, OwnerGraph, OwnerNode, PolicyInput
from policies.registry import builtin_rules

CASES = Path(__file__).parent / "cases"
UNIT = UnitRef(UnitKind.KUSTOMIZATION, "flux-system", "apps")
HR = UnitRef(UnitKind.HELM_RELEASE, "flux-system", "chart")

KINDS = [
    ("v1", "Secret"),
    ("v1", "Namespace"),
    ("v1", "Service"),
    ("v1", "PersistentVolumeClaim"),
    ("v1", "ConfigMap"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("batch/v1", "CronJob"),
    ("batch/v1", "Job"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("policy/v1beta1", "PodDisruptionBudget"),
    ("kustomize.toolkit.fluxcd.io/v1", "Kustomization"),
    ("helm.toolkit.fluxcd.io/v2", "HelmRelease"),
    ("source.toolkit.fluxcd.io/v1", "GitRepository"),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
]
ODD: list[Any] = [
    {},
    {"metadata": "x", "spec": [], "data": "x", "stringData": [1]},
    {"metadata": {"annotations": ["a"], "labels": 3}, "spec": {"template": [], "selector": None}},
    {"spec": {"replicas": "many", "scaleTargetRef": [], "jobTemplate": {"spec": 1}}},
    {"spec": {"template": {"spec": {"containers": [None, 3, {"image": 7}, {"image": "x"}]}}}},
    {"spec": {"chart": {"spec": {"version": 5, "sourceRef": "x"}}, "install": [], "suspend": 1}},
    {"spec": {"dependsOn": "x", "sourceRef": {"namespace": 4}, "serviceAccountName": []}},
    {"spec": {"resources": {"requests": {"storage": "lots"}}}, "immutable": "yes", "type": None},
    {"data": {"k": None}, "sops": None, "roleRef": 1, "spec": {"clusterIP": ["a"]}},
]
BAD_OPTIONS: dict[str, dict[str, dict[str, Any]]] = {
    "": {
        "GP001": {"kinds": 5},
        "GP010": {"requireDigest": "yes"},
        "GP015": {"tenants": [{"name": 1}, "x"]},
        "GP016": {"tenants": "x"},
        "GP025": {"maxDeletes": "many"},
    }
}


def _change(api_version: str, kind: str, action: Action, old: Any, new: Any) -> ChangeInput:
    old, new = ({"apiVersion": api_version, "kind": kind, **body} for body in (old, new))
    unit = HR if kind == "Secret" and action is Action.MOVE else UNIT
    operations = {
        Action.CREATE: Operation.CREATE,
        Action.UPDATE: Operation.UPDATE,
        Action.MOVE: Operation.UPDATE,
        Action.DELETE: Operation.DELETE,
        Action.ORPHAN: None,
        Action.UNKNOWN: Operation.CREATE,
    }
    return ChangeInput(
        operation=operations[action],
        action=action,
        ref=ObjectRef(group_of(api_version), kind, "web", "odd"),
        api_version=api_version,
        object=None if action in (Action.DELETE, Action.ORPHAN) else new,
        old_object=None if action is Action.CREATE else old,
        cluster="clusters/test",
        unit=unit,
        old_unit=HR if action is Action.MOVE else UNIT,
        prune=True,
        file="clusters/test/flux-system/odd.yaml",
        kube_version="not-a-version",
    )


def test_rules_skip_hostile_shapes_instead_of_raising() -> None:
    changes = tuple(
        _change(api_version, kind, action, old, new)
        for (api_version, kind), action, old, new in itertools.product(
            KINDS, list(Action), ODD, ODD[:5]
        )
    )
    graph = OwnerGraph(
        "clusters/test",
        {
            UNIT: OwnerNode(UNIT, UnitStatus.REMOVED, True, depends_on=(UNIT, HR)),
            HR: OwnerNode(HR, UnitStatus.ADDED, True, parent=UNIT, depends_on=(UNIT,)),
        },
        definitions={
            "odd-versions": {
                "spec": {"group": "", "names": {"kind": "ConfigMap"}, "versions": "x"}
            },
            "odd-schema": {
                "spec": {
                    "group": "keda.sh",
                    "names": {"kind": "ScaledObject"},
                    "versions": [{"name": "v1alpha1", "schema": {"openAPIV3Schema": {"type": 5}}}],
                }
            },
            "odd-spec": {"spec": []},
        },
    )
    policy_input = PolicyInput(
        "base", "head", changes, {"clusters/test": graph}, options=BAD_OPTIONS
    )

    result = evaluate(policy_input, builtin_rules().values())

    errors = [f.message for f in result.findings if f.rule == RULE_ERROR]
    assert errors == []
    assert {f.rule for f in result.findings} >= {"GP001", "GP010", "GP015", "GP025"}


def test_no_finding_quotes_a_secret_value() -> None:
    rules = list(builtin_rules().values())
    messages: list[str] = []
    for path in sorted(CASES.rglob("*.yaml")):
        text = path.read_text()
        result = evaluate_case(load_case(path, display=str(path.relative_to(CASES))), rules)
        messages.extend(f.message for f in result.findings)
        if "canary" in text:
            assert result.findings, f"{path.name} plants a canary but raises nothing to check"
    assert messages
    assert not [m for m in messages if "canary" in m or "Y2FuYXJ5" in m]
