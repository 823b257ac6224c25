"""Rules over a change set: built-in GitOps rules and user rules in CEL.

Adding a built-in rule:

1. Create one module `policies/rules/<title_with_underscores>.py` whose docstring says what the
   rule checks and why (the incident it prevents), and which defines `RULE`: an object with a
   `meta` (`policies.base.RuleMeta`: a new id like `GP026`, never reused, kebab-case title,
   default severity, summary, docs, `approval_required`) and `evaluate(policy_input)` returning
   findings built with `policies.base.finding(meta, message, change=...)`. The registry
   (`policies.registry`) finds it; nothing else to register.
2. Read only the input (`policies.input.PolicyInput`): each `ChangeInput` in the admission shape
   (`operation`, `object`, `old_object`) with its GitOps context (`action`, `cluster`, `unit`,
   `old_unit`, `prune`, `file`, `profile`, ...), and the owner graph per cluster
   (`policy_input.owners`). Thresholds come from `policy_input.option(id, name, default,
   profile=change.profile)`. Never raise on odd content (it is written by the pull request):
   skip what does not have the expected shape.
3. Do not apply waivers, approvals or configured severities: `policies.evaluate` does that for
   every rule alike.
4. Add test cases in the fixture format of `policies.fixtures` under
   `tests/policies/cases/<id>/` (one YAML file per case: base and head units, expected findings);
   the suite runs every case, and `tidegate policy test DIR` runs users' cases the same way.

Layout: `input` (the contract), `base` (`Rule`, `RuleMeta`, `finding`), `registry` (built-in
catalog), `config` (`policies:` in `.tidegate.yaml`), `evaluate` (the gate), `fixtures` (policy
tests), `rules/` (built-in rules), `cel/` (user rules). This package imports only the core model
(`core.model`, `core.changes`, `core.units`, `core.findings`) and the planner for fixtures; an
import-linter contract keeps it away from rendering, repositories, clusters and VCS adapters.
"""
