"""Waivers and approvals: what stops a finding from blocking, always shown, never silent.

Three layers, tried in this order for each finding; the first that applies is attached to the
finding (`Finding.waiver`), which stays in the report with the waiver's reason:

1. **Approval** (approval-required rules only): an approving review on the current head commit
   by a code owner of the affected path. Owners come from the BASE revision's CODEOWNERS, the
   first that exists where the repository's host looks: GitHub `.github/CODEOWNERS`,
   `CODEOWNERS`, `docs/CODEOWNERS`; GitLab `CODEOWNERS`, `docs/CODEOWNERS`,
   `.gitlab/CODEOWNERS` (GitHub's syntax: the last matching pattern wins). The affected path is
   the finding's file, else the file that defines its unit. Approvals on an older commit do not
   count; a team (`@org/team`) counts when the caller reports that the team approved.
2. **Object annotation** `tidegate.dev/waive-<RULE>: "<reason>"`, with a non-empty reason. It is
   read from the head object, or from the base object when the object leaves (delete, orphan).
   An approval-required rule accepts it only if the base object already carried it: a waiver
   added in the same pull request would let the author approve themselves. Rules that say so
   (`RuleMeta.annotation_waivable`) accept no annotation at all.
3. **Waiver file** `.tidegate/waivers.yaml`: entries with rules, reason, owner, expiry and an
   optional match (cluster, kind, namespace, name, path globs). Entries come from the BASE
   revision; entries the pull request adds or changes count only once a code owner of the waiver
   file approved the head commit. An expired entry waives nothing and is itself a finding.

A `rule-error` (a rule that crashed) is never waived. Pure: files, approvals and today's date
are handed in.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import yaml
from codeowners import CodeOwners

from core.errors import InputError
from core.findings import Finding, Severity, Waiver, WaiverKind
from core.model import ObjectRef
from policies.base import Rule
from policies.config import glob_match
from policies.evaluate import RULE_ERROR
from policies.gate import RevisionFiles
from policies.input import ChangeInput, PolicyInput

__all__ = [
    "ANNOTATION_PREFIX",
    "CODEOWNERS_FILES",
    "CODEOWNERS_OF",
    "GITLAB_CODEOWNERS_FILES",
    "WAIVER_FILE",
    "Approval",
    "Waivers",
    "parse_waiver_file",
]

ANNOTATION_PREFIX = "tidegate.dev/waive-"
WAIVER_FILE = ".tidegate/waivers.yaml"
CODEOWNERS_FILES = (".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS")
"""Where GitHub reads CODEOWNERS, in its order; only the first that exists is read."""
GITLAB_CODEOWNERS_FILES = ("CODEOWNERS", "docs/CODEOWNERS", ".gitlab/CODEOWNERS")
"""Where GitLab reads CODEOWNERS, in its order (root, docs/, .gitlab/); the first is read."""
CODEOWNERS_OF: Mapping[str, tuple[str, ...]] = {
    "github": CODEOWNERS_FILES,
    "gitlab": GITLAB_CODEOWNERS_FILES,
}
"""The CODEOWNERS locations of each host, by the name `--codeowners-of` takes."""
WAIVER_EXPIRED = "waiver-expired"
WAIVER_INVALID = "waiver-invalid"
WAIVER_PENDING = "waiver-pending"
_MATCH_KEYS = ("cluster", "kind", "namespace", "name", "path")
_ENTRY_KEYS = {"rules", "reason", "owner", "expires", "match", "ticket"}
_MAX_FILE = 1 << 20


@dataclass(frozen=True)
class Approval:
    """An approving review: who (a user or `@org/team`) and on which commit."""

    reviewer: str
    commit: str


@dataclass(frozen=True)
class WaiverEntry:
    """One entry of the waiver file."""

    rules: tuple[str, ...]
    reason: str
    owner: str
    expires: datetime.date
    match: Mapping[str, str] = field(default_factory=dict)
    line: int = 0

    def covers(self, found: Finding) -> bool:
        """Tell whether the entry's rules and selectors match a finding."""
        if found.rule not in self.rules:
            return False
        ref = found.ref
        values = {
            "cluster": found.cluster,
            "kind": ref.kind if ref else "",
            "namespace": ref.namespace if ref else "",
            "name": ref.name if ref else "",
            "path": found.file or "",
        }
        return all(glob_match(pattern, values[key]) for key, pattern in self.match.items())

    def key(self) -> tuple[object, ...]:
        """Identity for telling base entries from ones the pull request added or changed."""
        return (
            self.rules,
            self.reason,
            self.owner,
            self.expires,
            tuple(sorted(self.match.items())),
        )


def parse_waiver_file(text: str, *, file: str = WAIVER_FILE) -> list[WaiverEntry]:
    """Parse the waiver file; errors name the file, entry and field."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        raise InputError(f"is not valid YAML: {exc}", file=file) from None
    if root is None:
        return []
    document = yaml.safe_load(text)
    if not isinstance(document, Mapping) or set(document) - {"waivers"}:
        raise InputError("must be a mapping with one key, waivers", file=file)
    items = document.get("waivers")
    items = [] if items is None else items
    if not isinstance(items, list):
        raise InputError("must be a list", file=file, field="waivers")
    lines = _item_lines(root)
    return [_entry(item, f"waivers[{i}]", file, lines.get(i, 0)) for i, item in enumerate(items)]


def _item_lines(root: yaml.Node) -> dict[int, int]:
    """Return the 1-based line of each entry of `waivers`, for annotations."""
    if not isinstance(root, yaml.MappingNode):
        return {}
    for key, value in root.value:
        if getattr(key, "value", None) == "waivers" and isinstance(value, yaml.SequenceNode):
            return {i: node.start_mark.line + 1 for i, node in enumerate(value.value)}
    return {}


def _entry(item: Any, where: str, file: str, line: int) -> WaiverEntry:
    def fail(at: str, message: str) -> InputError:
        return InputError(message, file=file, field=f"{where}{at}")

    if not isinstance(item, Mapping):
        raise fail("", "must be a mapping")
    unknown = sorted(str(k) for k in item if k not in _ENTRY_KEYS)
    if unknown:
        raise fail(f".{unknown[0]}", f"is not a known key ({', '.join(sorted(_ENTRY_KEYS))})")
    rules = item.get("rules")
    if not isinstance(rules, list) or not rules or not all(isinstance(r, str) for r in rules):
        raise fail(".rules", "must be a non-empty list of rule ids")
    for key in ("reason", "owner"):
        if not isinstance(item.get(key), str) or not item[key].strip():
            raise fail(f".{key}", "is required")
    expires = item.get("expires")
    if isinstance(expires, str):
        try:
            expires = datetime.date.fromisoformat(expires)
        except ValueError:
            raise fail(".expires", "must be a date like 2026-12-31") from None
    if not isinstance(expires, datetime.date) or isinstance(expires, datetime.datetime):
        raise fail(".expires", "is required: a date like 2026-12-31")
    match = item.get("match") or {}
    if not isinstance(match, Mapping) or not all(k in _MATCH_KEYS for k in match):
        raise fail(".match", f"must be a mapping of {', '.join(_MATCH_KEYS)} to globs")
    return WaiverEntry(
        rules=tuple(rules),
        reason=item["reason"].strip(),
        owner=item["owner"].strip(),
        expires=expires,
        match={str(k): str(v) for k, v in match.items()},
        line=line,
    )


def _annotations(body: Mapping[str, Any] | None) -> Mapping[str, Any]:
    meta = body.get("metadata") if isinstance(body, Mapping) else None
    values = meta.get("annotations") if isinstance(meta, Mapping) else None
    return values if isinstance(values, Mapping) else {}


def _owners_file(files: RevisionFiles, locations: Sequence[str]) -> tuple[str, CodeOwners | None]:
    for path in locations:
        data = files.read(path)
        if data is not None:
            return path, CodeOwners(data[:_MAX_FILE].decode("utf-8", errors="replace"))
    return "", None


class Waivers:
    """The waive step of one evaluation (`policies.gate.WaiverStep`)."""

    def __init__(
        self,
        policy_input: PolicyInput,
        base: RevisionFiles,
        head: RevisionFiles,
        rules: Mapping[str, Rule],
        *,
        approvals: Sequence[Approval] = (),
        today: datetime.date,
        codeowners_files: Sequence[str] = CODEOWNERS_FILES,
    ) -> None:
        self.rules = rules
        self.today = today
        self.changes: dict[tuple[str, ObjectRef], ChangeInput] = {
            (c.cluster, c.ref): c for c in policy_input.changes
        }
        self.unit_files = {
            (cluster, ref): node.file
            for cluster, graph in policy_input.owners.items()
            for ref, node in graph.units.items()
        }
        self.codeowners_path, self.codeowners = _owners_file(base, codeowners_files)
        self.approvers = {
            a.reviewer.lower().lstrip("@") for a in approvals if a.commit == policy_input.head
        }
        self.extra: list[Finding] = []
        base_entries = self._load(base)
        head_entries = self._load(head)
        known = {entry.key() for entry in base_entries}
        added = [entry for entry in head_entries if entry.key() not in known]
        self.entries = list(base_entries)
        if added and self._approved(WAIVER_FILE):
            self.entries.extend(added)
        else:
            for entry in added:
                self.extra.append(
                    Finding(
                        rule=WAIVER_PENDING,
                        severity=Severity.NOTICE,
                        message=f"waiver for {', '.join(entry.rules)} added in this pull request "
                        "takes effect after the merge, or now with an approving review from a "
                        f"code owner of {WAIVER_FILE}",
                        file=WAIVER_FILE,
                        line=entry.line or None,
                    )
                )
        for entry in self.entries:
            if entry.expires < today:
                self.extra.append(
                    Finding(
                        rule=WAIVER_EXPIRED,
                        severity=Severity.WARNING,
                        message=f"waiver for {', '.join(entry.rules)} owned by {entry.owner} "
                        f"expired on {entry.expires.isoformat()}; it waives nothing",
                        file=WAIVER_FILE,
                        line=entry.line or None,
                    )
                )

    def _load(self, files: RevisionFiles) -> list[WaiverEntry]:
        data = files.read(WAIVER_FILE)
        if data is None:
            return []
        if len(data) > _MAX_FILE:
            raise InputError(f"is larger than {_MAX_FILE} bytes", file=WAIVER_FILE)
        return parse_waiver_file(data.decode("utf-8", errors="replace"))

    def findings(self) -> Sequence[Finding]:
        """Findings about waivers: pending, expired, and annotations without a reason."""
        return tuple(self.extra)

    def __call__(self, found: Finding) -> Finding:
        """Attach the first waiver that covers a finding, else say how to get one."""
        if found.rule == RULE_ERROR:
            return found
        rule = self.rules.get(found.rule)
        path = self._affected_path(found)
        if found.approval_required:
            approval = self._approval(path)
            if approval is not None:
                return replace(found, waiver=approval)
        annotated = self._annotation(found, rule)
        if annotated is not None:
            return replace(found, waiver=annotated)
        for entry in self.entries:
            if entry.expires >= self.today and entry.covers(found):
                return replace(
                    found,
                    waiver=Waiver(
                        WaiverKind.FILE,
                        entry.reason,
                        by=entry.owner,
                        expires=entry.expires.isoformat(),
                        where=f"{WAIVER_FILE}:{entry.line}" if entry.line else WAIVER_FILE,
                    ),
                )
        if found.approval_required:
            owners = self._owners(path)
            who = ", ".join(owners) if owners else "a code owner"
            where = f"{path or 'the affected path'} in {self.codeowners_path or 'CODEOWNERS'}"
            return replace(
                found,
                how_to_waive=f"needs an approving review of the head commit from {who}"
                f" (owners of {where})",
            )
        return found

    # Approvals.

    def _affected_path(self, found: Finding) -> str:
        if found.file:
            return found.file
        if found.unit is not None:
            return self.unit_files.get((found.cluster, found.unit)) or ""
        return ""

    def _owners(self, path: str) -> list[str]:
        if not path or self.codeowners is None:
            return []
        return [owner for _kind, owner in self.codeowners.of(path)]

    def _approved(self, path: str) -> list[str]:
        return [o for o in self._owners(path) if o.lower().lstrip("@") in self.approvers]

    def _approval(self, path: str) -> Waiver | None:
        approvers = self._approved(path)
        if not approvers:
            return None
        return Waiver(
            WaiverKind.APPROVAL,
            f"approved on the head commit by a code owner of {path}",
            by=", ".join(approvers),
            where=self.codeowners_path,
        )

    # Annotations.

    def _annotation(self, found: Finding, rule: Rule | None) -> Waiver | None:
        if found.ref is None or (rule is not None and not rule.meta.annotation_waivable):
            return None
        change = self.changes.get((found.cluster, found.ref))
        if change is None:
            return None
        key = f"{ANNOTATION_PREFIX}{found.rule}"
        leaving = change.object is None
        body = change.old_object if leaving else change.object
        reason = _annotations(body).get(key)
        if reason is None:
            return None
        if not isinstance(reason, str) or not reason.strip():
            self.extra.append(
                replace(
                    found,
                    rule=WAIVER_INVALID,
                    severity=Severity.WARNING,
                    message=f"annotation {key} has no reason, so it waives nothing",
                    approval_required=False,
                )
            )
            return None
        if found.approval_required and not leaving:
            at_base = _annotations(change.old_object).get(key)
            if not isinstance(at_base, str) or not at_base.strip():
                return None  # added by this pull request: it cannot approve itself
        side = "base" if leaving else "head"
        return Waiver(
            WaiverKind.ANNOTATION,
            reason.strip(),
            where=f"{key} on {found.ref} ({side})",
        )
