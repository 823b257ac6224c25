"""Policy test fixtures: base/head pairs of rendered units with the findings they must produce.

`tidegate policy test DIR` runs every `*.yaml` case file under DIR (recursively, in path order);
the built-in rules' own tests use the same format and runner. One case per file:

```yaml
case: pruning a PVC needs a code owner's approval     # what the case shows
cluster: clusters/production                          # optional (default clusters/test)
rules: [GP001]              # optional: compare only these rules' findings (default: all)
config:                     # optional: the `policies:` section of .tidegate.yaml
  rules: {GP017: {severity: notice}}
base:                       # the units rendered at the base revision, with their objects
- unit: Kustomization/flux-system/apps
  prune: true               # optional (default true)
  path: ./apps              # optional
  parent: Kustomization/flux-system/flux-system   # optional
  dependsOn: [Kustomization/flux-system/infra]    # optional
  deletionPolicy: MirrorPrune                     # optional (Delete, WaitForTermination, Orphan)
  error: kustomization path not found: ./apps     # optional: the render failed (no objects)
  objects:                  # rendered Kubernetes objects (Secrets are masked on load)
  - {apiVersion: v1, kind: PersistentVolumeClaim, metadata: {name: data, namespace: web}}
head:
- unit: Kustomization/flux-system/apps
  objects: []
expect:                     # exactly these findings, in any order
- rule: GP001
  object: PersistentVolumeClaim/web/data   # Kind/namespace/name, or Kind/name; omit for unit-
  severity: error                          # or cluster-level findings; optional
  waived: false                            # optional
  message: approval                        # optional: a substring of the message
```

The sides are planned by the real planner (`core.plan`), so a case sees exactly the change set a
preview of the same renders would produce. Objects' source file is the case file. Loading
validates every field and names the file and field of a mistake. No rendering, no git.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from core.changes import Preview
from core.errors import InputError
from core.findings import Finding, PolicyResult
from core.model import Manifest, ObjectRef, UnitKind, UnitRef
from core.plan.plan import plan_cluster
from core.secrets import Masker
from core.units import ClusterRender, RenderedUnit
from policies.base import Rule
from policies.config import PolicyConfig, parse_config
from policies.evaluate import evaluate
from policies.input import build_input

__all__ = [
    "Case",
    "CaseResult",
    "Expected",
    "evaluate_case",
    "load_case",
    "run_case",
    "run_directory",
]

_MAX_CASE_BYTES = 4 << 20
_CASE_KEYS = {"case", "cluster", "rules", "config", "base", "head", "expect"}
_UNIT_KEYS = {
    "unit",
    "prune",
    "path",
    "parent",
    "dependsOn",
    "objects",
    "suspend",
    "deletionPolicy",
    "error",
}
_DELETION_POLICIES = ("MirrorPrune", "Delete", "WaitForTermination", "Orphan")
_EXPECT_KEYS = {"rule", "object", "severity", "waived", "message"}


@dataclass(frozen=True)
class Expected:
    """One finding a case expects."""

    rule: str
    object: str = ""
    severity: str | None = None
    waived: bool | None = None
    message: str = ""

    def matches(self, found: Finding) -> bool:
        """Tell whether a finding is this expectation."""
        return (
            found.rule == self.rule
            and (str(found.ref) if found.ref else "") == self.object
            and (self.severity is None or found.severity.value == self.severity)
            and (self.waived is None or found.waived == self.waived)
            and self.message in found.message
        )

    def __str__(self) -> str:
        return f"{self.rule} on {self.object or 'no object'}"


@dataclass(frozen=True)
class Case:
    """One loaded case."""

    file: str
    name: str
    preview: Preview
    expect: tuple[Expected, ...]
    rules: tuple[str, ...] = ()
    config: PolicyConfig = field(default_factory=PolicyConfig)


@dataclass(frozen=True)
class CaseResult:
    """A case's outcome: what was missing and what was unexpected."""

    case: Case
    missing: tuple[Expected, ...]
    unexpected: tuple[Finding, ...]

    @property
    def passed(self) -> bool:
        """Tell whether the findings were exactly the expected ones."""
        return not self.missing and not self.unexpected


Evaluator = Callable[[Case], PolicyResult]
"""Evaluates a case's preview with its configuration (the caller chooses the rules)."""


def evaluate_case(case: Case, rules: Sequence[Rule]) -> PolicyResult:
    """Evaluate a case's preview with the given rules and the case's configuration."""
    policy_input = build_input(
        case.preview,
        kube_version=case.config.kube_version,
        profile_of=case.config.profile_of,
        options=case.config.options(),
    )
    return evaluate(policy_input, rules, case.config)


def run_directory(directory: Path, evaluate: Evaluator) -> list[CaseResult]:
    """Load and run every case file under a directory, in path order."""
    if not directory.is_dir():
        raise InputError("is not a directory", file=str(directory))
    files = sorted(p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml"))
    if not files:
        raise InputError("holds no *.yaml policy test case", file=str(directory))
    return [
        run_case(load_case(path, display=str(path.relative_to(directory))), evaluate)
        for path in files
    ]


def run_case(case: Case, evaluate: Evaluator) -> CaseResult:
    """Evaluate a case and compare its findings with the expected ones."""
    found = [
        finding
        for finding in evaluate(case).findings
        if not case.rules or finding.rule in case.rules
    ]
    missing = []
    for expected in case.expect:
        match = next((f for f in found if expected.matches(f)), None)
        if match is None:
            missing.append(expected)
        else:
            found.remove(match)
    return CaseResult(case, tuple(missing), tuple(found))


def load_case(path: Path, *, display: str | None = None) -> Case:
    """Load one case file; errors name the file and the field."""
    name = display or path.name
    data = path.read_bytes()
    if len(data) > _MAX_CASE_BYTES:
        raise InputError(f"is larger than {_MAX_CASE_BYTES} bytes", file=name)
    try:
        document = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise InputError(f"is not valid YAML: {exc}", file=name) from None
    return _Loader(name).case(document)


class _Loader:
    def __init__(self, file: str) -> None:
        self.file = file
        self.masker = Masker()

    def fail(self, where: str, message: str) -> InputError:
        return InputError(message, file=self.file, field=where)

    def mapping(self, value: Any, where: str, keys: set[str]) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(where, "must be a mapping")
        unknown = sorted(str(k) for k in value if k not in keys)
        if unknown:
            known = ", ".join(sorted(keys))
            raise self.fail(f"{where}.{unknown[0]}", f"is not a known key (known: {known})")
        return value

    def sequence(self, value: Any, where: str) -> Sequence[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(where, "must be a list")
        return value

    def case(self, document: Any) -> Case:
        doc = self.mapping(document, "case file", _CASE_KEYS)
        title = doc.get("case")
        if not isinstance(title, str) or not title:
            raise self.fail("case", "is required: say what the case shows")
        cluster = str(doc.get("cluster") or "clusters/test")
        rules = tuple(str(r) for r in self.sequence(doc.get("rules"), "rules"))
        config = PolicyConfig()
        if doc.get("config") is not None:
            config = parse_config(yaml.safe_dump({"policies": doc["config"]}), file=self.file)
        base = self.side(doc.get("base"), "base", cluster)
        head = self.side(doc.get("head"), "head", cluster)
        plan = plan_cluster(base, head)
        expect = tuple(
            self.expected(item, f"expect[{index}]")
            for index, item in enumerate(self.sequence(doc.get("expect"), "expect"))
        )
        return Case(
            file=self.file,
            name=title,
            preview=Preview(base="base", head="head", clusters=(plan,)),
            expect=expect,
            rules=rules,
            config=config,
        )

    def side(self, value: Any, where: str, cluster: str) -> ClusterRender:
        units: dict[UnitRef, RenderedUnit] = {}
        for index, item in enumerate(self.sequence(value, where)):
            at = f"{where}[{index}]"
            item = self.mapping(item, at, _UNIT_KEYS)
            ref = self.unit_ref(item.get("unit"), f"{at}.unit")
            if ref in units:
                raise self.fail(f"{at}.unit", f"{ref} is listed twice")
            objects: dict[ObjectRef, Manifest] = {}
            for number, obj in enumerate(self.sequence(item.get("objects"), f"{at}.objects")):
                manifest = self.manifest(obj, f"{at}.objects[{number}]")
                objects[manifest.ref] = manifest
            parent = item.get("parent")
            prune = item.get("prune", True)
            if not isinstance(prune, bool):
                raise self.fail(f"{at}.prune", "must be true or false")
            error = item.get("error")
            if error is not None and (not isinstance(error, str) or not error):
                raise self.fail(f"{at}.error", "must be a non-empty string")
            policy = item.get("deletionPolicy", "MirrorPrune")
            if policy not in _DELETION_POLICIES:
                raise self.fail(
                    f"{at}.deletionPolicy", f"must be one of {', '.join(_DELETION_POLICIES)}"
                )
            units[ref] = RenderedUnit(
                unit=ref,
                prune=prune if ref.kind is UnitKind.KUSTOMIZATION else True,
                objects=None if error else objects,
                error=error,
                parent=self.unit_ref(parent, f"{at}.parent") if parent else None,
                suspend=bool(item.get("suspend", False)),
                deletion_policy=str(policy),
                path=str(item["path"]) if item.get("path") is not None else None,
                depends_on=tuple(
                    self.unit_ref(dep, f"{at}.dependsOn[{n}]")
                    for n, dep in enumerate(self.sequence(item.get("dependsOn"), f"{at}.dependsOn"))
                ),
                file=self.file,
            )
        return ClusterRender(cluster, dict(sorted(units.items())))

    def unit_ref(self, value: Any, where: str) -> UnitRef:
        parts = str(value or "").split("/")
        if len(parts) != 3 or not all(parts) or parts[0] not in {k.value for k in UnitKind}:
            raise self.fail(where, "must look like Kustomization/namespace/name or HelmRelease/...")
        return UnitRef(UnitKind(parts[0]), parts[1], parts[2])

    def manifest(self, value: Any, where: str) -> Manifest:
        if not isinstance(value, Mapping):
            raise self.fail(where, "must be a Kubernetes object (a mapping)")
        api_version, kind = value.get("apiVersion"), value.get("kind")
        meta = value.get("metadata")
        if not isinstance(api_version, str) or not api_version:
            raise self.fail(f"{where}.apiVersion", "is required")
        if not isinstance(kind, str) or not kind:
            raise self.fail(f"{where}.kind", "is required")
        if not isinstance(meta, Mapping) or not isinstance(meta.get("name"), str):
            raise self.fail(f"{where}.metadata.name", "is required")
        body = self.masker.mask_object(dict(value))
        return Manifest(api_version, body, self.file)

    def expected(self, value: Any, where: str) -> Expected:
        item = self.mapping(value, where, _EXPECT_KEYS)
        rule = item.get("rule")
        if not isinstance(rule, str) or not rule:
            raise self.fail(f"{where}.rule", "is required")
        severity = item.get("severity")
        if severity is not None and severity not in ("error", "warning", "notice"):
            raise self.fail(f"{where}.severity", "must be error, warning or notice")
        waived = item.get("waived")
        if waived is not None and not isinstance(waived, bool):
            raise self.fail(f"{where}.waived", "must be true or false")
        return Expected(
            rule=rule,
            object=str(item.get("object") or ""),
            severity=severity,
            waived=waived,
            message=str(item.get("message") or ""),
        )
