"""GP020 chart-version-range: a HelmRelease follows an open-ended chart version range.

With `spec.chart.spec.version` empty, `*` or only a lower bound (`>=1.2.0`), any new chart
release is deployed on the next reconcile: a merge of an unrelated pull request, or no merge at
all, can upgrade the release. Bounded ranges (`6.5.*`, `~1.2.0`, `^1.2.0`, `>=1.2 <2`) and exact
versions pass. Warning by default; give it `severity: error` in the production profile. The
rule also reports a pull request that widens a bounded range into an open-ended one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from core.findings import Finding, Severity
from core.model import FLUX_HELM_GROUP
from policies.base import RuleMeta, finding
from policies.input import PolicyInput
from policies.rules.objects import get

__all__ = ["RULE", "open_ended"]

META = RuleMeta(
    id="GP020",
    title="chart-version-range",
    severity=Severity.WARNING,
    summary="HelmRelease chart versions must be bounded.",
    docs=(
        "Pin the chart (`version: 1.4.2`) or bound the range (`1.4.*`, `~1.4.0`,"
        " `>=1.4.0 <2.0.0`), and upgrade by pull request."
    ),
)

_COMPARATOR = re.compile(r"(>=|<=|!=|>|<|=|~|\^)?\s*v?([0-9xX*][0-9A-Za-z.*+-]*)")
_WILDCARDS = frozenset({"*", "x", "X"})


def open_ended(constraint: str) -> bool:
    """Tell whether a Masterminds semver constraint admits every future major release."""
    for alternative in constraint.split("||"):
        text = alternative.strip()
        if not text or text in _WILDCARDS:
            return True
        if " - " in text:
            continue  # a hyphen range has an upper bound
        comparators = _COMPARATOR.findall(text.replace(",", " "))
        if not comparators:
            return True
        bounded = any(
            op in ("<", "<=", "~", "^")
            or (op in ("", "=") and version.split(".")[0] not in _WILDCARDS)
            for op, version in comparators
        )
        if not bounded:
            return True
    return False


@dataclass(frozen=True)
class _ChartVersionRange:
    meta: RuleMeta = META

    def evaluate(self, policy_input: PolicyInput) -> Iterator[Finding]:
        for change in policy_input.changes:
            body = change.object
            if body is None or (change.ref.group, change.ref.kind) != (
                FLUX_HELM_GROUP,
                "HelmRelease",
            ):
                continue
            version = get(body, "spec.chart.spec.version", "")
            if not isinstance(version, str) or not open_ended(version):
                continue
            shown = version or "(empty: the latest)"
            old = get(change.old_object, "spec.chart.spec.version", "")
            widened = change.old_object is not None and isinstance(old, str) and not open_ended(old)
            message = f"{change.ref} follows the open-ended chart version range {shown}"
            if widened:
                message += f", widened from {old} by this change"
            yield finding(self.meta, message, change=change)


RULE = _ChartVersionRange()
