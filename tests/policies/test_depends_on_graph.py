"""GP006 searches for cycles only in a cluster the change touches.

Every GP006 finding needs a unit whose Flux object the change creates, changes or moves, or a
dependency it removes; a cluster the change leaves alone (most of a large fleet's) is skipped
before the graph is walked. The rule's findings themselves are the fixture cases'
(tests/policies/cases/GP006).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from policies.fixtures import evaluate_case
from policies.rules import depends_on_graph
from tests.policies.cases import case

UNTOUCHED_CYCLE = """
    case: a cycle the change does not touch
    rules: [GP006]
    base: &units
    - unit: Kustomization/flux-system/a
      dependsOn: [Kustomization/flux-system/b]
      objects: []
    - unit: Kustomization/flux-system/b
      dependsOn: [Kustomization/flux-system/a]
      objects: []
    head: *units
    expect: []
"""

CASES = Path(__file__).parent / "cases" / "GP006"


def _searches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    searched: list[int] = []
    real = depends_on_graph._cycles

    def spy(units: Any) -> Any:
        searched.append(len(units))
        return real(units)

    monkeypatch.setattr(depends_on_graph, "_cycles", spy)
    return searched


def test_a_cluster_the_change_leaves_alone_is_not_searched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    searched = _searches(monkeypatch)

    findings = evaluate_case(case(tmp_path, UNTOUCHED_CYCLE), [depends_on_graph.RULE])

    assert findings.findings == ()
    assert searched == []


def test_a_cluster_the_change_touches_is_searched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    searched = _searches(monkeypatch)

    findings = evaluate_case(
        case(tmp_path, (CASES / "cycle.yaml").read_text()), [depends_on_graph.RULE]
    )

    assert [f.rule for f in findings.findings] == ["GP006"]
    assert searched == [3]  # the cluster of units a, b and flux-system
