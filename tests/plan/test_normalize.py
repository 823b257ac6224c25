"""Noise rules.

Aspects covered:
- each default rule strips exactly its fields (server fields, helm chart labels on objects, pod
  templates and CronJob job templates, checksum annotations on pod templates, SOPS metadata);
- real fields next to the noise stay, including look-alikes (a checksum annotation on the object
  itself, a `chart` field that is not a label);
- mappings left empty by a rule are dropped, the input object is never modified;
- suppressed line counts per rule: equal noise hides nothing, changed noise counts `-` and `+`
  lines, a side that does not exist counts as empty;
- rule names are unique and the default order is stable.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from core.plan import normalize


def _deployment(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "api", "namespace": "web", "labels": {"app": "api"}},
        "spec": {
            "replicas": 2,
            "template": {
                "metadata": {"labels": {"app": "api"}},
                "spec": {"containers": [{"name": "api", "image": "api:1"}]},
            },
        },
    }
    body.update(extra)
    return body


def _with(body: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    node = body
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    return body


NOISE = [
    pytest.param("server-fields", ("status",), {"readyReplicas": 2}, id="status"),
    pytest.param(
        "server-fields", ("metadata", "creationTimestamp"), "2024-01-01T00:00:00Z", id="created"
    ),
    pytest.param("server-fields", ("metadata", "resourceVersion"), "123", id="resource-version"),
    pytest.param("server-fields", ("metadata", "uid"), "0000-1111", id="uid"),
    pytest.param("server-fields", ("metadata", "generation"), 4, id="generation"),
    pytest.param("server-fields", ("metadata", "managedFields"), [{"manager": "x"}], id="managed"),
    pytest.param(
        "server-fields",
        ("spec", "template", "metadata", "creationTimestamp"),
        None,
        id="template-created",
    ),
    pytest.param(
        "helm-chart-labels", ("metadata", "labels", "helm.sh/chart"), "api-1.2.3", id="helm-chart"
    ),
    pytest.param(
        "helm-chart-labels",
        ("metadata", "labels", "app.kubernetes.io/version"),
        "1.2.3",
        id="app-version",
    ),
    pytest.param("helm-chart-labels", ("metadata", "labels", "chart"), "api-1.2.3", id="chart"),
    pytest.param(
        "helm-chart-labels",
        ("spec", "template", "metadata", "labels", "helm.sh/chart"),
        "api-1.2.3",
        id="template-helm-chart",
    ),
    pytest.param(
        "helm-chart-labels",
        ("spec", "jobTemplate", "spec", "template", "metadata", "labels", "chart"),
        "api-1.2.3",
        id="cronjob-template-chart",
    ),
    pytest.param(
        "checksum-annotations",
        ("spec", "template", "metadata", "annotations", "checksum/config"),
        "abc",
        id="template-checksum",
    ),
    pytest.param("sops-metadata", ("sops",), {"mac": "ENC[...]", "version": "3.9"}, id="sops"),
]


@pytest.mark.parametrize(("rule", "path", "value"), NOISE)
def test_each_rule_strips_its_field_and_reports_it(
    rule: str, path: tuple[str, ...], value: Any
) -> None:
    body = _with(_deployment(), path, value)

    result = normalize.normalize(body)

    assert result.body == _deployment()
    assert list(result.removed) == [rule]
    assert [(r.path, r.value) for r in result.removed[rule]] == [(path, value)]


def test_real_fields_next_to_noise_stay() -> None:
    body = _deployment()
    body["metadata"]["labels"]["helm.sh/chart"] = "api-1.2.3"
    body["metadata"]["annotations"] = {"checksum/config": "abc"}  # not a pod template
    body["spec"]["chart"] = "not-a-label"

    result = normalize.normalize(body)

    assert result.body["metadata"]["labels"] == {"app": "api"}
    assert result.body["metadata"]["annotations"] == {"checksum/config": "abc"}
    assert result.body["spec"]["chart"] == "not-a-label"


def test_mappings_emptied_by_a_rule_are_dropped() -> None:
    body = _deployment()
    body["spec"]["template"]["metadata"] = {"annotations": {"checksum/secret": "1"}}

    result = normalize.normalize(body)

    assert "metadata" not in result.body["spec"]["template"]


def test_normalize_does_not_modify_its_input() -> None:
    body = _with(_deployment(), ("metadata", "labels", "helm.sh/chart"), "api-1")
    original = copy.deepcopy(body)

    normalize.normalize(body)

    assert body == original


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        pytest.param("api-1.0.0", "api-1.0.0", {}, id="equal-noise-hides-nothing"),
        pytest.param("api-1.0.0", "api-1.1.0", {"helm-chart-labels": 2}, id="changed-value"),
        pytest.param(None, "api-1.1.0", {"helm-chart-labels": 1}, id="added-label"),
    ],
)
def test_suppressed_lines_count_the_diff_lines_a_rule_hid(
    before: str | None, after: str, expected: dict[str, int]
) -> None:
    old = _deployment()
    if before is not None:
        _with(old, ("metadata", "labels", "helm.sh/chart"), before)
    new = _with(_deployment(), ("metadata", "labels", "helm.sh/chart"), after)

    counts = normalize.suppressed_lines(normalize.normalize(old), normalize.normalize(new))

    assert counts == expected


def test_suppressed_lines_of_a_missing_side_count_every_removed_line() -> None:
    body = _deployment(status={"replicas": 2, "readyReplicas": 2})

    counts = normalize.suppressed_lines(None, normalize.normalize(body))

    assert counts == {"server-fields": 3}  # `status:` and its two fields


def test_suppressed_lines_count_each_rule_separately() -> None:
    old = _with(_deployment(), ("spec", "template", "metadata", "annotations"), {"checksum/a": "1"})
    new = _with(_deployment(), ("spec", "template", "metadata", "annotations"), {"checksum/a": "2"})
    _with(new, ("metadata", "labels", "chart"), "api-2")

    counts = normalize.suppressed_lines(normalize.normalize(old), normalize.normalize(new))

    assert counts == {"checksum-annotations": 2, "helm-chart-labels": 1}


def test_default_rules_have_unique_names_in_a_stable_order() -> None:
    names = [rule.name for rule in normalize.RULES]

    assert names == ["server-fields", "helm-chart-labels", "checksum-annotations", "sops-metadata"]


def test_text_keys_makes_mixed_keys_sortable() -> None:
    assert normalize.text_keys({1: [{True: "a"}], "b": 2}) == {"1": [{"True": "a"}], "b": 2}
