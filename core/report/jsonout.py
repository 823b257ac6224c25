"""The preview as JSON: the public, machine-readable contract.

The shape is stable; fields may be added but never renamed or removed:

    {"schemaVersion": 1, "base": SHA, "head": SHA, "failed": bool, "changed": bool,
     "unavailableSources": "fail|skip",
     "clusters": [{"path": "clusters/production", "errors": [...],
       "units": [{"kind": "Kustomization", "namespace": "flux-system", "name": "apps",
                  "status": "rendered|failed|unavailable|added|removed|unchanged",
                  "prune": true, "error": null,
                  "reason": "input|source|build|dependency|budget|withheld|internal|null",
                  "unavailableSource": null,
                  "suspended": false, "skipped": 0, "path": "./apps",
                  "parent": "Kustomization/flux-system/flux-system", "note": null,
                  "suppressed": {"helm-chart-labels": 4}, "noiseOnlyObjects": 1,
                  "notices": ["CustomResourceDefinition/x.example.com changes in the chart's
                               crds/ but helm-controller will not apply the change: ..."],
                  "changes": [{"action": "create|update|delete|orphan|move|unknown",
                               "apiVersion": "apps/v1", "kind": "Deployment", "group": "apps",
                               "namespace": "web", "name": "api", "movedFrom": null,
                               "fields": ["spec.replicas"], "diff": "unified diff text",
                               "suppressed": {"helm-chart-labels": 2}, "note": null}]}]}],
     "summary": {"create": 0, "update": 0, "delete": 0, "orphan": 0, "move": 0, "unknown": 0,
                 "failed": 0, "unavailable": 0, "errors": 0},
     "provenUnchanged": 0,
     "findings": [{"rule": "GP001", "severity": "error|warning|notice", "message": "...",
                   "cluster": "clusters/production", "unit": "Kustomization/flux-system/apps",
                   "apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": "web",
                   "name": "data", "file": "apps/web/pvc.yaml", "line": 3, "waived": false,
                   "approvalRequired": true, "blocking": true, "waiver": null}],
     "gate": {"passed": false, "blocking": 1, "waived": 0, "rules": ["GP001", ...]}}

`findings` lists every policy finding, blocking first (`core.report.policy.finding_json`); it is
empty and `gate` is null when policies were not evaluated. `waiver` says how a waived finding was
waived: `{"kind": "annotation|file|approval", "reason", "by", "expires", "where"}`.

`provenUnchanged` is present only with changed-only rendering (`--changed-only`): the number of
units proven unchanged from the files their builds read, without rendering them; they are listed
with status `unchanged` like any other.

A unit is `unavailable` when a source it needs (a chart repository) could not be reached:
`unavailableSource` is the URL (without its query) and `error` says why. With
`"unavailableSources": "fail"` (the default) such units make `failed` true; with `"skip"` they
do not, and they were not previewed.

`movedFrom` (and `parent`) name a unit as the string `Kind/namespace/name`: Kubernetes names
cannot contain `/`, so the string is unambiguous and easy to match in `jq`. A change's `note` says
what Flux will do beyond what its action says (a chart CRD it will not apply, the units an
`unknown` object may move from or to). Cluster-scoped
objects have `"namespace": ""`. `suppressed` counts diff lines hidden per noise rule; a unit's
count includes its noise-only objects, which are not changes.

Size: `dumps` keeps the text under a budget (`max_bytes`). When the full report is larger, the
largest diffs are emptied first, then whole change lists (their counts stay in `summary`), and a
top-level `"truncated"` object says what was cut: `{"limitBytes": N, "diffsOmitted": N,
"changesOmitted": N}`. A report that cannot fit even then fails with `BudgetError`.

Formatting only: no I/O. Free text (errors, notes) is scrubbed of anything shaped like a mask
token; diffs come from `core.plan.compare`, which never emits one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import orjson

from core.changes import Change, ClusterPlan, Preview, UnitPlan
from core.errors import BudgetError
from core.findings import PolicyResult
from core.plan import compare as comparing
from core.report import policy as policy_report

__all__ = ["DEFAULT_MAX_BYTES", "SCHEMA_VERSION", "dumps", "to_json"]

SCHEMA_VERSION = 1
DEFAULT_MAX_BYTES = 16 << 20


def to_json(preview: Preview, policy: PolicyResult | None = None) -> dict[str, Any]:
    """Return the preview, and the policy findings if evaluated, as plain JSON-ready data."""
    summary = dict(preview.summary)
    summary["errors"] = sum(len(cluster.errors) for cluster in preview.clusters)
    selection = (
        {} if preview.proven_unchanged is None else {"provenUnchanged": preview.proven_unchanged}
    )
    return {
        "schemaVersion": SCHEMA_VERSION,
        "base": preview.base,
        "head": preview.head,
        "failed": preview.failed,
        "changed": preview.changed,
        "unavailableSources": "skip" if preview.skip_unavailable else "fail",
        "clusters": [_cluster(cluster) for cluster in preview.clusters],
        "summary": summary,
        **selection,
        "findings": [policy_report.finding_json(f) for f in policy.findings] if policy else [],
        "gate": policy_report.gate_json(policy) if policy else None,
    }


def dumps(
    preview: Preview,
    policy: PolicyResult | None = None,
    *,
    indent: int | None = 2,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> str:
    """Return the preview as JSON text (keys in contract order, UTF-8 kept as is).

    Raises:
        BudgetError: the report does not fit `max_bytes` even without any change listed.
    """
    data = to_json(preview, policy)
    text = _text(data, indent)
    if _size(text) <= max_bytes:
        return text
    changes = [
        change
        for cluster in data["clusters"]
        for unit in cluster["units"]
        for change in unit["changes"]
    ]
    excess = _size(text) - max_bytes
    omitted = 0
    for change in sorted(changes, key=lambda c: len(c["diff"]), reverse=True):
        if excess <= 0 or not change["diff"]:
            break
        excess -= _size(json.dumps(change["diff"], ensure_ascii=False))
        change["diff"] = ""
        omitted += 1
    data["truncated"] = {"limitBytes": max_bytes, "diffsOmitted": omitted, "changesOmitted": 0}
    text = _text(data, indent)
    if _size(text) > max_bytes:
        for cluster in data["clusters"]:
            for unit in cluster["units"]:
                data["truncated"]["changesOmitted"] += len(unit["changes"])
                unit["changes"] = []
        text = _text(data, indent)
    if _size(text) > max_bytes:
        raise BudgetError(
            f"the JSON report needs more than {max_bytes} bytes even without its changes",
            flag="--max-report-bytes",
        )
    return text


def _text(data: dict[str, Any], indent: int | None) -> str:
    """The report's text: `json.dumps(data, indent=indent, ensure_ascii=False)` and a newline.

    At the usual indent of 2 orjson writes exactly those bytes, ten times faster (a fleet's
    report of unchanged units is most of a warm preview's output). What orjson refuses is
    written by `json`: an integer wider than 64 bits, and a lone surrogate (a path that is not
    UTF-8, decoded with `surrogateescape`), which no UTF-8 text can hold: it is written as its
    JSON escape.
    """
    if indent == 2:
        try:
            return orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n"
        except orjson.JSONEncodeError:
            pass
    text = json.dumps(data, indent=indent, ensure_ascii=False)
    # A surrogate can only be inside a string, where `\udcff` is its JSON escape.
    return text.encode("utf-8", "backslashreplace").decode() + "\n"


def _size(text: str) -> int:
    return len(text.encode())


def _cluster(cluster: ClusterPlan) -> dict[str, Any]:
    return {
        "path": cluster.path,
        "errors": [comparing.scrub(error) for error in cluster.errors],
        "units": [_unit(unit) for unit in cluster.units],
    }


def _unit(unit: UnitPlan) -> dict[str, Any]:
    note = unit.note
    return {
        "kind": unit.unit.kind.value,
        "namespace": unit.unit.namespace,
        "name": unit.unit.name,
        "status": unit.status.value,
        "prune": unit.prune,
        "error": comparing.scrub(unit.error) if unit.error is not None else None,
        "reason": unit.reason.value if unit.reason is not None else None,
        "unavailableSource": unit.unavailable_source,
        "suspended": unit.suspended,
        "skipped": unit.skipped,
        "path": unit.path,
        "parent": str(unit.parent) if unit.parent else None,
        "note": comparing.scrub(note) if note is not None else None,
        "suppressed": _counts(unit.suppressed),
        "noiseOnlyObjects": unit.noise_only,
        "changes": [_change(change) for change in unit.changes],
        "notices": [comparing.scrub(notice) for notice in unit.notices],
    }


def _change(change: Change) -> dict[str, Any]:
    return {
        "action": change.action.value,
        "apiVersion": change.api_version,
        "kind": change.ref.kind,
        "group": change.ref.group,
        "namespace": change.ref.namespace,
        "name": change.ref.name,
        "movedFrom": str(change.moved_from) if change.moved_from else None,
        "fields": list(change.fields),
        "diff": change.diff,
        "suppressed": _counts(change.suppressed),
        "note": comparing.scrub(change.note) if change.note is not None else None,
    }


def _counts(counts: Mapping[str, int]) -> dict[str, int]:
    return {name: counts[name] for name in sorted(counts) if counts[name]}
