"""The `policies:` section of `.tidegate.yaml`: severities, profiles per path glob, options.

```yaml
policies:
  kubernetesVersion: "1.33"          # target cluster version rules check against
  rules:                             # defaults for every path
    GP017: {severity: notice}        # error | warning | notice
    GP019: {enabled: false}
    GP025: {maxDeletes: 20}          # any other key is a rule option (threshold, list, ...)
  profiles:                          # first match wins; globs match the cluster entry point
  - name: production                 # or the object's source file
    paths: ["clusters/production/**", "apps/production/**"]
    rules:
      GP010: {severity: error}
```

Other top-level keys of `.tidegate.yaml` belong to other parts of Tidegate (`fetch:` is parsed by
`core.config`, which names the file) and are ignored here.
Unknown keys inside `policies:` are errors, named by file and field, so a typo never silently
disables a rule.

Which revision decides: the configuration is read from the BASE revision, because a pull request
must not be able to weaken the rules that judge it. The head's configuration may only make things
stricter (`strictest`): a finding gets the more severe of the base's and the head's severity for
its rule, and a rule enabled on either side is enabled. Options and profiles come from the base
only; changing them takes effect once merged. Parsing and merging only: reading the files is
the caller's job.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any, NoReturn

import yaml

from core.config import CONFIG_FILE
from core.errors import InputError
from core.findings import Severity

__all__ = ["CONFIG_FILE", "PolicyConfig", "Profile", "RuleConfig", "glob_match", "parse_config"]

_MAX_BYTES = 1 << 20
_TOP_KEYS = {"kubernetesVersion", "rules", "profiles"}
_KUBE_VERSION = re.compile(r"^1\.[0-9]{1,3}$")


@dataclass(frozen=True)
class RuleConfig:
    """Overrides for one rule: severity, enabled, and free-form options."""

    severity: Severity | None = None
    enabled: bool | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    floor: Severity | None = None
    """The head revision's severity: applied only where it is stricter than the effective one."""

    def effective(self, default: Severity) -> Severity:
        """Return the severity a finding gets, given the severity the rule gave it."""
        severity = self.severity or default
        if self.floor is not None and self.floor.rank < severity.rank:
            return self.floor
        return severity


@dataclass(frozen=True)
class Profile:
    """Stricter or looser settings for the paths that match its globs."""

    name: str
    paths: tuple[str, ...]
    rules: Mapping[str, RuleConfig] = field(default_factory=dict)


@dataclass(frozen=True)
class PolicyConfig:
    """The parsed `policies:` section (empty means every rule at its defaults)."""

    kube_version: str = "1.33"
    rules: Mapping[str, RuleConfig] = field(default_factory=dict)
    profiles: tuple[Profile, ...] = ()

    def profile_of(self, cluster: str, file: str | None) -> str:
        """Return the first profile whose globs match the cluster path or the file; else ``."""
        for profile in self.profiles:
            for pattern in profile.paths:
                if glob_match(pattern, cluster) or (file and glob_match(pattern, file)):
                    return profile.name
        return ""

    def rule(self, rule: str, profile: str = "") -> RuleConfig:
        """Return a rule's effective overrides in a profile (profile keys over the defaults)."""
        base = self.rules.get(rule, RuleConfig())
        chosen = next((p for p in self.profiles if p.name == profile), None)
        extra = chosen.rules.get(rule) if chosen else None
        if extra is None:
            return base
        floors = [f for f in (base.floor, extra.floor) if f is not None]
        return RuleConfig(
            severity=extra.severity or base.severity,
            enabled=extra.enabled if extra.enabled is not None else base.enabled,
            options={**base.options, **extra.options},
            floor=min(floors, key=lambda f: f.rank) if floors else None,
        )

    def options(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Return options by profile (`""` is the default) and rule, for `PolicyInput`."""
        result: dict[str, dict[str, dict[str, Any]]] = {
            "": {rule: dict(conf.options) for rule, conf in self.rules.items() if conf.options}
        }
        for profile in self.profiles:
            result[profile.name] = {
                rule: dict(self.rule(rule, profile.name).options)
                for rule in set(self.rules) | set(profile.rules)
            }
        return result

    def strictest(self, head: PolicyConfig) -> PolicyConfig:
        """Return this (base) configuration, made stricter where the head asks for it."""
        return replace(
            self,
            rules=_stricter(self.rules, head.rules),
            profiles=tuple(
                replace(
                    profile,
                    rules=_stricter(
                        profile.rules,
                        next((p.rules for p in head.profiles if p.name == profile.name), {}),
                    ),
                )
                for profile in self.profiles
            ),
        )


def _stricter(
    base: Mapping[str, RuleConfig], head: Mapping[str, RuleConfig]
) -> dict[str, RuleConfig]:
    merged = dict(base)
    for rule, wanted in head.items():
        have = merged.get(rule, RuleConfig())
        # The rule's default is unknown here, so the head's severity is kept as a floor and
        # compared when a finding's severity is decided (`RuleConfig.effective`).
        floor = wanted.severity if wanted.severity is not None else have.floor
        enabled = True if wanted.enabled is True else have.enabled
        merged[rule] = replace(have, floor=floor, enabled=enabled)
    return merged


def parse_config(text: str, *, file: str = CONFIG_FILE) -> PolicyConfig:
    """Parse the `policies:` section of a `.tidegate.yaml`; other keys are left alone."""
    if len(text.encode()) > _MAX_BYTES:
        raise InputError(f"is larger than {_MAX_BYTES} bytes", file=file)
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"is not valid YAML: {exc}", file=file) from None
    if document is None:
        return PolicyConfig()
    if not isinstance(document, Mapping):
        raise InputError("must be a mapping", file=file)
    section = document.get("policies")
    if section is None:
        return PolicyConfig()
    reader = _Reader(file)
    section = reader.mapping(section, "policies")
    reader.known(section, _TOP_KEYS, "policies")
    version = str(section.get("kubernetesVersion", "1.33"))
    if not _KUBE_VERSION.match(version):
        reader.fail("policies.kubernetesVersion", f"must look like 1.33, not {version!r}")
    profiles = []
    names: set[str] = set()
    for index, item in enumerate(reader.sequence(section.get("profiles", []), "policies.profiles")):
        where = f"policies.profiles[{index}]"
        item = reader.mapping(item, where)
        reader.known(item, {"name", "paths", "rules"}, where)
        name = item.get("name")
        if not isinstance(name, str) or not name:
            reader.fail(f"{where}.name", "is required and must be a string")
        if name in names:
            reader.fail(f"{where}.name", f"profile {name!r} is defined twice")
        names.add(name)
        paths = reader.sequence(item.get("paths"), f"{where}.paths")
        if not paths or not all(isinstance(p, str) and p for p in paths):
            reader.fail(f"{where}.paths", "must be a non-empty list of path globs")
        profiles.append(
            Profile(name, tuple(paths), reader.rules(item.get("rules", {}), f"{where}.rules"))
        )
    return PolicyConfig(
        kube_version=version,
        rules=reader.rules(section.get("rules", {}), "policies.rules"),
        profiles=tuple(profiles),
    )


class _Reader:
    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, field_path: str, message: str) -> NoReturn:
        raise InputError(message, file=self.file, field=field_path)

    def mapping(self, value: Any, where: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            self.fail(where, "must be a mapping")
        return {str(k): v for k, v in value.items()}

    def sequence(self, value: Any, where: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(where, "must be a list")
        return list(value)

    def known(self, value: Mapping[str, Any], keys: set[str], where: str) -> None:
        unknown = sorted(set(value) - keys)
        if unknown:
            known = ", ".join(sorted(keys))
            self.fail(f"{where}.{unknown[0]}", f"is not a known key (known: {known})")

    def rules(self, value: Any, where: str) -> dict[str, RuleConfig]:
        rules: dict[str, RuleConfig] = {}
        for rule, body in self.mapping(value, where).items():
            at = f"{where}.{rule}"
            body = self.mapping(body, at)
            severity = body.get("severity")
            if severity is not None and severity not in {s.value for s in Severity}:
                self.fail(f"{at}.severity", "must be error, warning or notice")
            enabled = body.get("enabled")
            if enabled is not None and not isinstance(enabled, bool):
                self.fail(f"{at}.enabled", "must be true or false")
            options = {k: v for k, v in body.items() if k not in ("severity", "enabled")}
            rules[rule] = RuleConfig(
                severity=Severity(severity) if severity is not None else None,
                enabled=enabled,
                options=options,
            )
        return rules


def glob_match(pattern: str, path: str) -> bool:
    """Match a repository path against a glob: `*` within a segment, `**` across segments."""
    return _compile(pattern.strip("/")).fullmatch(path.strip("/").removeprefix("./")) is not None


@cache
def _compile(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("/**", i) and i + 3 == len(pattern):
            out.append("(?:/.*)?")  # `dir/**` also matches `dir` itself (a cluster path)
            i += 3
        elif pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))
