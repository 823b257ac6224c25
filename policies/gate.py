"""The policy gate of a preview: configuration and rules from the base revision, then evaluation.

What judges a pull request must come from the revision it merges into, never from the pull
request itself, or a PR could weaken the rules that judge it:

- `.tidegate.yaml` (`policies:`) is read at base; the head's copy may only make rules stricter
  (`PolicyConfig.strictest`);
- user rules (`.tidegate/policies/`) are loaded from base only. Rules the pull request adds or
  changes are loaded from head too and compiled, so a broken rule fails the pull request that
  adds it; they are reported as `notice` findings that say they take effect after the merge,
  and never block it;
- waivers and approvals are applied by `policies.waivers` (see there for which revision each
  one is read from);
- findings get the line of their object in its source file where it can be found
  (`policies.locate`), for annotations.

The caller hands in the two revisions' files through `RevisionFiles`, so this module never
touches git or the file system itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from core.changes import Preview
from core.findings import Finding, PolicyResult
from policies.base import Rule
from policies.config import CONFIG_FILE, PolicyConfig, parse_config
from policies.evaluate import evaluate
from policies.input import PolicyInput, build_input
from policies.locate import add_lines
from policies.registry import builtin_rules

__all__ = ["GateOutcome", "RevisionFiles", "WaiverStep", "load_config", "run_gate"]

_MAX_CONFIG = 1 << 20


class RevisionFiles(Protocol):
    """Read-only access to one revision's files."""

    def read(self, path: str) -> bytes | None:
        """Return a file's content, or None when it does not exist at this revision."""
        ...

    def files(self, directory: str) -> list[str]:
        """Return the paths of the files under a directory (recursively), sorted."""
        ...


UserRules = Callable[[RevisionFiles, RevisionFiles], tuple[Sequence[Rule], Sequence[Finding]]]
"""Loads user rules from base (and checks head's); returns the rules and load-time findings."""


class WaiverStep(Protocol):
    """Marks findings that a waiver or approval covers; reports problems with waivers."""

    def __call__(self, found: Finding) -> Finding:
        """Return the finding, with a waiver attached when one covers it."""
        ...

    def findings(self) -> Sequence[Finding]:
        """Return findings about the waivers themselves (expired, invalid)."""
        ...


WaiverFactory = Callable[
    [PolicyInput, RevisionFiles, RevisionFiles, Mapping[str, Rule]], WaiverStep
]
"""Builds the waive step for an input, from the revisions' waivers and approvals."""


@dataclass(frozen=True)
class GateOutcome:
    """The policy result plus what reports need to describe the rules."""

    result: PolicyResult
    config: PolicyConfig
    rules: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    """Rule id -> (title, summary)."""


def load_config(base: RevisionFiles, head: RevisionFiles) -> PolicyConfig:
    """Return the base revision's configuration, made stricter where the head asks."""
    return _config(base).strictest(_config(head))


def _config(files: RevisionFiles) -> PolicyConfig:
    data = files.read(CONFIG_FILE)
    if data is None:
        return PolicyConfig()
    return parse_config(data.decode("utf-8", errors="replace"), file=CONFIG_FILE)


def run_gate(
    preview: Preview,
    base: RevisionFiles,
    head: RevisionFiles,
    *,
    rules: Sequence[Rule] | None = None,
    user_rules: UserRules | None = None,
    waivers: WaiverFactory | None = None,
) -> GateOutcome:
    """Evaluate the built-in rules (or the given ones) and the base's user rules on a preview."""
    config = load_config(base, head)
    chosen: list[Rule] = list(builtin_rules().values()) if rules is None else list(rules)
    extra: Sequence[Finding] = ()
    if user_rules is not None:
        loaded, extra = user_rules(base, head)
        chosen.extend(loaded)
    policy_input = build_input(
        preview,
        kube_version=config.kube_version,
        profile_of=config.profile_of,
        options=config.options(),
    )
    by_id = {rule.meta.id: rule for rule in chosen}
    step = waivers(policy_input, base, head, by_id) if waivers is not None else None
    result = evaluate(policy_input, chosen, config, waive=step)
    if step is not None:
        extra = (*extra, *step.findings())
    findings = add_lines(sorted((*result.findings, *extra), key=Finding.sort_key), head, base)
    result = PolicyResult(findings=findings, rules=result.rules)
    return GateOutcome(
        result=result,
        config=config,
        rules={rule.meta.id: (rule.meta.title, rule.meta.summary) for rule in chosen},
    )
