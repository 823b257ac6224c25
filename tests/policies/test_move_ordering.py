"""GP003's ordering argument holds only when both units read the same source.

kustomize-controller waits for a dependency to have applied the source's current revision only
when the dependency reads the same source; otherwise a dependency ready at an older revision
lets the dependent (the unit the object leaves) prune first. Fixture cases cannot give units
different sources, so this test changes the owner graph of a planned case directly.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from core.findings import Severity
from core.model import UnitKind, UnitRef
from core.units import SourceRef
from policies.input import build_input
from policies.rules.move_detected import RULE
from tests.policies.cases import case

OLD = UnitRef(UnitKind.KUSTOMIZATION, "flux-system", "old")
NEW = UnitRef(UnitKind.KUSTOMIZATION, "flux-system", "new")
MOVE = """
case: old depends on new, and a claim moves from old to new
base:
- unit: Kustomization/flux-system/old
  objects:
  - {apiVersion: v1, kind: PersistentVolumeClaim, metadata: {name: data, namespace: db}}
- unit: Kustomization/flux-system/new
  objects: []
head:
- unit: Kustomization/flux-system/old
  dependsOn: [Kustomization/flux-system/new]
  objects: []
- unit: Kustomization/flux-system/new
  objects:
  - {apiVersion: v1, kind: PersistentVolumeClaim, metadata: {name: data, namespace: db}}
expect: []
"""


def test_dependency_on_another_source_does_not_make_a_move_safe(tmp_path: Path) -> None:
    policy_input = build_input(case(tmp_path, MOVE).preview)
    [(cluster, graph)] = policy_input.owners.items()
    repo = SourceRef("GitRepository", "flux-system", "flux-system")
    other = SourceRef("GitRepository", "flux-system", "other")

    def with_sources(old: SourceRef, new: SourceRef) -> list[Severity]:
        units = dict(graph.units)
        units[OLD] = dataclasses.replace(units[OLD], source=old)
        units[NEW] = dataclasses.replace(units[NEW], source=new)
        owners = {cluster: dataclasses.replace(graph, units=units)}
        changed = dataclasses.replace(policy_input, owners=owners)
        return [found.severity for found in RULE.evaluate(changed)]

    assert with_sources(repo, repo) == [Severity.NOTICE]
    assert with_sources(repo, other) == [Severity.ERROR]
