"""Benchmark the built-in rule catalog on a synthetic change set of about 5,000 changes.

The change set is built in memory, no rendering: three clusters of 150 units each, and for every
unit a mix of what a large pull request produces (updated Deployments with HPAs, created
ConfigMaps and Secrets, pruned claims, moved Services, HelmReleases, a few Flux Kustomizations
with `dependsOn`). Every built-in rule runs through `policies.evaluate.evaluate`, as a preview
runs them. Reports the median wall time of the whole catalog and each rule's share, over
`--repeat` runs, and the findings count so a run that finds nothing is visible.

Run from the repository root: `.venv/bin/python -m bench.policy_rules [--repeat 5]`.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from core.changes import Action, UnitStatus
from core.model import ObjectRef, UnitKind, UnitRef, group_of
from policies.evaluate import evaluate
from policies.input import ChangeInput, Operation, OwnerGraph, OwnerNode, PolicyInput
from policies.registry import builtin_rules

CLUSTERS = ("clusters/staging", "clusters/production", "clusters/edge")
UNITS_PER_CLUSTER = 150
_OPERATIONS = {
    Action.CREATE: Operation.CREATE,
    Action.UPDATE: Operation.UPDATE,
    Action.MOVE: Operation.UPDATE,
    Action.DELETE: Operation.DELETE,
    Action.ORPHAN: None,
}


def _deployment(name: str, ns: str, replicas: int, tag: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {"name": name, "image": f"ghcr.io/example/{name}:{tag}"},
                        {"name": "proxy", "image": "envoyproxy/envoy:v1.31.0"},
                    ]
                },
            },
        },
    }


def _unit_changes(cluster: str, index: int) -> list[ChangeInput]:
    unit = UnitRef(UnitKind.KUSTOMIZATION, "flux-system", f"app-{index}")
    other = UnitRef(UnitKind.KUSTOMIZATION, "flux-system", f"app-{(index + 1) % UNITS_PER_CLUSTER}")
    ns = f"app-{index}"
    file = f"apps/app-{index}/deployment.yaml"
    items: list[tuple[Action, dict[str, Any] | None, dict[str, Any] | None]] = [
        (
            Action.UPDATE,
            _deployment("api", ns, 2, "1.0.0"),
            _deployment("api", ns, 3, "1.1.0" if index % 7 else "latest"),
        ),
        (
            Action.CREATE,
            None,
            {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": "api", "namespace": ns},
                "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "api"}},
            },
        ),
        (
            Action.CREATE,
            None,
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "settings", "namespace": ns},
                "data": {f"key{k}": f"value ${{var{k}}}" if k == 0 else "v" for k in range(20)},
            },
        ),
        (
            Action.DELETE,
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": "data", "namespace": ns},
            },
            None,
        ),
        (
            Action.MOVE,
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": ns}},
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": ns}},
        ),
        (
            Action.CREATE,
            None,
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "creds", "namespace": ns},
                "data": {"token": "tidegate:masked:0"},
                "sops": {"version": "3.9.0"},
            },
        ),
        (
            Action.UPDATE,
            {
                "apiVersion": "helm.toolkit.fluxcd.io/v2",
                "kind": "HelmRelease",
                "metadata": {"name": "cache", "namespace": ns},
                "spec": {"chart": {"spec": {"chart": "redis", "version": "1.2.*"}}},
            },
            {
                "apiVersion": "helm.toolkit.fluxcd.io/v2",
                "kind": "HelmRelease",
                "metadata": {"name": "cache", "namespace": ns},
                "spec": {"chart": {"spec": {"chart": "redis", "version": ">=1.2.0"}}},
            },
        ),
        (
            Action.UPDATE,
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": ns}},
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": ns}},
        ),
        (
            Action.CREATE,
            None,
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b", "namespace": ns}},
        ),
        (
            Action.ORPHAN,
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": ns}},
            None,
        ),
        (
            Action.UPDATE,
            {
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "metadata": {"name": "db", "namespace": ns},
                "spec": {"serviceName": "db"},
            },
            {
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "metadata": {"name": "db", "namespace": ns},
                "spec": {"serviceName": "db2"},
            },
        ),
    ]
    changes = []
    for action, old, new in items:
        body = new or old or {}
        api_version = str(body["apiVersion"])
        changes.append(
            ChangeInput(
                operation=_OPERATIONS[action],
                action=action,
                ref=ObjectRef.of(body),
                api_version=api_version,
                object=new,
                old_object=old,
                cluster=cluster,
                unit=unit,
                old_unit=other
                if action is Action.MOVE
                else (None if action is Action.CREATE else unit),
                prune=True,
                file=file,
            )
        )
    assert all(group_of(c.api_version) == c.ref.group for c in changes)
    return changes


def build() -> PolicyInput:
    """Return the synthetic policy input."""
    changes: list[ChangeInput] = []
    owners: dict[str, OwnerGraph] = {}
    for cluster in CLUSTERS:
        nodes = {}
        for index in range(UNITS_PER_CLUSTER):
            changes.extend(_unit_changes(cluster, index))
            ref = UnitRef(UnitKind.KUSTOMIZATION, "flux-system", f"app-{index}")
            deps = (
                (UnitRef(UnitKind.KUSTOMIZATION, "flux-system", f"app-{index - 1}"),)
                if index
                else ()
            )
            nodes[ref] = OwnerNode(
                ref, UnitStatus.RENDERED, True, path=f"./apps/app-{index}", depends_on=deps
            )
        owners[cluster] = OwnerGraph(cluster, nodes)
    return PolicyInput("base", "head", tuple(changes), owners)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    policy_input = build()
    rules = list(builtin_rules().values())
    totals, cpu, per_rule = [], [], {rule.meta.id: [] for rule in rules}
    findings = 0
    for _ in range(args.repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        findings = len(evaluate(policy_input, rules).findings)
        totals.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        for rule in rules:
            start = time.perf_counter()
            list(rule.evaluate(policy_input))
            per_rule[rule.meta.id].append(time.perf_counter() - start)
    print(f"changes: {len(policy_input.changes)}, rules: {len(rules)}, findings: {findings}")
    median = statistics.median(totals)
    print(
        f"whole catalog (evaluate): median {median:.3f} s wall,"
        f" {statistics.median(cpu):.3f} s CPU, over {args.repeat} runs"
    )
    slowest = sorted(per_rule.items(), key=lambda item: -statistics.median(item[1]))
    for rule_id, times in slowest:
        print(f"  {rule_id}: {statistics.median(times) * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
