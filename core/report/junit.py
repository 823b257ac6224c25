"""Policy findings as JUnit XML, the report format CI systems display natively.

One test suite per cluster (findings without a cluster go to `tidegate`); one test case per rule
that ran and per object it reported on. A blocking finding is a `<failure>`; a non-blocking one
(warning, notice, or waived) passes with the message in `<system-out>`, so the run stays green
exactly when the gate passes. Rules that reported nothing are one passing case each. Formatting
only: no I/O; XML is built with the standard library, which escapes all text.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET  # only to write XML, never to parse it
from collections import defaultdict

from core.findings import Finding, PolicyResult
from core.report import policy as report_policy

__all__ = ["dumps"]

_GLOBAL = "tidegate"


def dumps(result: PolicyResult) -> str:
    """Return the JUnit XML document of a policy result."""
    suites = ET.Element("testsuites", name="tidegate policies")
    by_cluster: dict[str, list[Finding]] = defaultdict(list)
    for found in result.findings:
        by_cluster[found.cluster or _GLOBAL].append(found)
    reported = {f.rule for f in result.findings}
    passing = [rule for rule in result.rules if rule not in reported]
    names = sorted(by_cluster) or [_GLOBAL]
    for name in names:
        findings = by_cluster.get(name, [])
        suite = ET.SubElement(suites, "testsuite", name=name)
        failures = 0
        for found in findings:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"{name}.{found.rule}",
                name=report_policy.location(found) or found.rule,
            )
            text = f"[{found.severity.value}] {report_policy.message(found)}"
            if found.blocking:
                failures += 1
                failure = ET.SubElement(case, "failure", message=text, type=found.rule)
                failure.text = f"{text}\nTo unblock: {report_policy.how_to_waive(found)}."
            else:
                out = ET.SubElement(case, "system-out")
                waived = (
                    f"\nWaived ({found.waiver.kind.value}): {found.waiver.reason}"
                    if found.waiver
                    else ""
                )
                out.text = text + waived
        if name == names[0]:
            for rule in passing:
                ET.SubElement(suite, "testcase", classname=f"{name}.{rule}", name=rule)
        suite.set("tests", str(len(suite.findall("testcase"))))
        suite.set("failures", str(failures))
        suite.set("errors", "0")
    total = sum(int(s.get("tests", "0")) for s in suites)
    suites.set("tests", str(total))
    suites.set("failures", str(sum(int(s.get("failures", "0")) for s in suites)))
    ET.indent(suites)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
    )
