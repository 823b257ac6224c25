"""Benchmark the policy gate on the synthetic fleet's full change set: built-in + 50 CEL rules.

The fleet (`bench.fleet`: 3 clusters x 150 apps, charts served on 127.0.0.1) is rendered at its
base branch with the real renderers, then planned against an empty base, so every rendered object
is a change (a creation): the largest change set the fleet can produce. On that set the bench
measures the policy step alone, as `tidegate preview` runs it: building the input, every
built-in rule on main, and 50 user rules in CEL (generated below: a mix of kinds, operations,
`matchConditions`, `variables` and library functions), through `policies.evaluate.evaluate`.

Reported: the number of changes and rules, the median wall and CPU time of the policy step over
`--repeat` runs (and of the built-in and the CEL rules alone), findings count, peak memory (the
Python heap peak during one evaluation, `tracemalloc`, and the process's maximum resident set,
which includes the render), and the load average, since CPU time is what to compare on a shared
machine.

Run from the repository root: `.venv/bin/python -m bench.policy_gate [--repeat 5]`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from bench import fleet as fleetgen
from bench.preview_bench import serve_charts
from core.fetch.policy import FetchPolicy
from core.plan.plan import plan_preview
from core.preview import find_clusters, render_revision
from core.render.cache import RenderCache
from core.render.unit import RenderOptions, RenderSettings
from core.repo.git import Repository
from devenv import toolchain
from devenv.ports import free_port
from policies.base import Rule
from policies.cel.rules import load_user_rules
from policies.evaluate import evaluate
from policies.input import build_input
from policies.registry import builtin_rules

_KINDS = (
    ("apps", "deployments", "Deployment"),
    ("", "services", "Service"),
    ("", "configmaps", "ConfigMap"),
    ("networking.k8s.io", "ingresses", "Ingress"),
    ("autoscaling", "horizontalpodautoscalers", "HorizontalPodAutoscaler"),
    ("", "serviceaccounts", "ServiceAccount"),
    ("rbac.authorization.k8s.io", "roles", "Role"),
    ("networking.k8s.io", "networkpolicies", "NetworkPolicy"),
    ("policy", "poddisruptionbudgets", "PodDisruptionBudget"),
    ("", "secrets", "Secret"),
)

_VALIDATIONS = (
    "object.metadata.name.size() < 64",
    "!has(object.metadata.labels) || object.metadata.labels.all(k, k.size() < 64)",
    "object.metadata.?namespace.orValue('') != 'kube-system'",
    "!has(object.spec) || !has(object.spec.template) || "
    "object.spec.template.spec.containers.all(c, !c.image.endsWith(':latest'))",
    "!has(object.spec) || !has(object.spec.template) || "
    "object.spec.template.spec.containers.all(c, !has(c.resources) || "
    "!has(c.resources.limits) || !has(c.resources.limits.memory) || "
    "!quantity(c.resources.limits.memory).isGreaterThan(quantity('8Gi')))",
    "variables.team == '' || variables.team.matches('^[a-z-]+$')",
    "!has(object.spec) || !has(object.spec.replicas) || object.spec.replicas <= 50",
    "tidegate.action != 'delete' || !('protected' in variables.labels)",
)


def cel_rules(count: int = 50) -> str:
    """Return `count` Tidegate policies as one YAML stream."""
    documents = []
    for index in range(count):
        group, plural, _kind = _KINDS[index % len(_KINDS)]
        validation = _VALIDATIONS[index % len(_VALIDATIONS)]
        documents.append(
            {
                "apiVersion": "tidegate.dev/v1alpha1",
                "kind": "Policy",
                "metadata": {"name": f"bench-rule-{index:02d}"},
                "spec": {
                    "severity": ("error", "warning", "notice")[index % 3],
                    "matchConstraints": {
                        "resourceRules": [
                            {
                                "apiGroups": [group],
                                "apiVersions": ["*"],
                                "resources": [plural],
                                "operations": ["CREATE", "UPDATE", "DELETE"],
                            }
                        ]
                    },
                    "matchConditions": [
                        {"name": "not-system", "expression": "request.namespace != 'kube-system'"}
                    ],
                    "variables": [
                        {
                            "name": "labels",
                            "expression": "(object != null ? object : oldObject).metadata"
                            ".?labels.orValue({})",
                        },
                        {"name": "team", "expression": "variables.labels.?team.orValue('')"},
                    ],
                    "validations": [
                        {
                            "expression": validation,
                            "messageExpression": "'rule " + str(index) + " on ' + request.name",
                        }
                    ],
                },
            }
        )
    return "\n---\n".join(json.dumps(d) for d in documents) + "\n"


class _Files:
    """One in-memory rule file, as `policies.gate.RevisionFiles`."""

    def __init__(self, text: str) -> None:
        self.text = text

    def read(self, path: str) -> bytes | None:
        return self.text.encode() if path == ".tidegate/policies/bench.yaml" else None

    def files(self, directory: str) -> list[str]:
        return [".tidegate/policies/bench.yaml"]


def render_fleet(work: Path, jobs: int) -> Any:
    """Generate and render the fleet's base branch; plan it against nothing."""
    port = free_port()
    fleet = fleetgen.generate(
        work / "gen", chart_url=f"http://127.0.0.1:{port}", helm=fleetgen.pinned_tool("helm")
    )
    options = RenderOptions(
        kustomize=fleetgen.pinned_tool("kustomize"),
        helm=fleetgen.pinned_tool("helm"),
        jobs=jobs,
        fetch_policy=FetchPolicy(allowed_hosts=None, allow_loopback=True),
    )
    # A persistent cache: the fleet is generated the same way every time, so a second run
    # renders only the HelmReleases (their chart URL names this run's port).
    settings = RenderSettings(options, RenderCache(toolchain.cache_root() / "bench-policy-gate"))
    with serve_charts(fleet.charts, port), Repository(fleet.repo) as repo:
        sha = repo.resolve(fleetgen.BASE_BRANCH)
        tree = repo.tree(sha)
        renders = render_revision(repo, tree, find_clusters(repo, tree), settings)
    return plan_preview("0" * 40, sha, {}, renders)


def _evaluate(preview: Any, rules: list[Rule]) -> tuple[float, int, float]:
    """Return wall seconds, findings and CPU seconds of building the input and evaluating."""
    started, cpu = time.perf_counter(), time.process_time()
    result = evaluate(build_input(preview), rules)
    return time.perf_counter() - started, len(result.findings), time.process_time() - cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.policy_gate")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tidegate-policy-bench-") as scratch:
        print("rendering the fleet (this takes a while on a cold cache)", file=sys.stderr)
        preview = render_fleet(Path(scratch), args.jobs)
    changes = sum(len(u.changes) for c in preview.clusters for u in c.units)
    builtin = list(builtin_rules().values())
    files = _Files(cel_rules())
    user, _notices = load_user_rules(files, files)
    everything: list[Rule] = [*builtin, *user]
    _evaluate(preview, everything)  # warm-up: imports, compile caches
    times, cpu_times, found = [], [], 0
    for _ in range(args.repeat):
        seconds, found, cpu = _evaluate(preview, everything)
        times.append(seconds)
        cpu_times.append(cpu)
    cel_runs = [_evaluate(preview, list(user)) for _ in range(args.repeat)]
    builtin_runs = [_evaluate(preview, builtin) for _ in range(args.repeat)]
    tracemalloc.start()
    _evaluate(preview, everything)
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    report = {
        "changes": changes,
        "builtin_rules": len(builtin),
        "cel_rules": len(user),
        "findings": found,
        "policy_step_s_median": round(statistics.median(times), 3),
        "policy_step_s_max": round(max(times), 3),
        "policy_step_cpu_s_median": round(statistics.median(cpu_times), 3),
        "builtin_only_s_median": round(statistics.median(r[0] for r in builtin_runs), 3),
        "builtin_only_cpu_s_median": round(statistics.median(r[2] for r in builtin_runs), 3),
        "cel_only_s_median": round(statistics.median(r[0] for r in cel_runs), 3),
        "cel_only_cpu_s_median": round(statistics.median(r[2] for r in cel_runs), 3),
        "load_average_1m": round(os.getloadavg()[0], 1),
        "python_heap_peak_mib": round(peak / 2**20, 1),
        "process_max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
