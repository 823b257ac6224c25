"""Per-cluster live plans in a review: head against each configured cluster's real state.

The operator names, in the service's own settings (`TIDEGATE_LIVE_CLUSTERS`, never the
repository), which cluster entry points the review plans against their cluster and with which
kubeconfig. For each of them that exists at the head commit, the review runs `tidegate preview
--live --path CLUSTER` in the preview process: each Kustomization's inventory is read from the
cluster, so the comment shows the exact prune set, and drift apart from the pull request's own
change. The plan always runs with `--live-managed-only`: a pull request can name any object,
so live values are shown only for objects in the inventories of Kustomizations the base revision
has; any other object that exists is said to exist and not be managed by Flux, nothing more
(`core.live_preview`). The offline preview still covers every cluster and decides the policy
gate, as `tidegate preview --live` does: drift is not the author's.

A cluster that cannot be read fails the review closed for that cluster, with a message naming
it: there is no fallback to the offline plan, which cannot show what the cluster would prune.
The kubeconfig's path and content never reach the comment or a log line: messages from the
preview process are cut of the path before they are shown.

It must not choose clusters or kubeconfigs from anything a pull request can write.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from app.settings import LiveCluster
from core.host.command import run

__all__ = ["LivePlan", "argv", "clusters_at", "failure", "section"]


@dataclass(frozen=True)
class LivePlan:
    """The outcome of one cluster's live plan."""

    cluster: str
    report: str
    """The live report (markdown), or the reason it could not be made."""
    ok: bool
    """Whether the plan proves what merging does to the cluster."""
    planned: bool = True
    """Whether the cluster was read and planned (a unit may still have failed to render)."""


def clusters_at(mirror: Path, sha: str, configured: Sequence[LiveCluster]) -> list[LiveCluster]:
    """The configured clusters whose entry point is a directory at commit `sha`."""
    present = []
    for cluster in configured:
        kind = run(
            ["git", "-C", str(mirror), "cat-file", "-t", f"{sha}:{cluster.path}"],
            ok_codes=(0, 128),
        )
        if kind.strip() == b"tree":
            present.append(cluster)
    return present


def argv(cluster: LiveCluster, output: Path) -> list[str]:
    """The flags that turn a review's preview into the live plan of `cluster`, into `output`."""
    flags = [
        "--path",
        cluster.path,
        "--live",
        # The head is hostile: live values only for what Flux manages from this repository.
        "--live-managed-only",
        f"--kubeconfig={cluster.kubeconfig}",
        # The gate is decided once, on the offline preview of every cluster.
        "--no-policies",
        "--output",
        str(output),
    ]
    if cluster.context:
        flags.append(f"--context={cluster.context}")
    return flags


def failure(cluster: LiveCluster, stderr: str, code: int) -> LivePlan:
    """The plan of a cluster whose live preview did not finish: closed, with the reason."""
    reason = stderr.strip() or f"tidegate preview --live exited with code {code}"
    reason = reason.replace(str(cluster.kubeconfig), "<kubeconfig>")
    return LivePlan(cluster.path, reason[:4000], ok=False, planned=False)


def section(plan: LivePlan) -> str:
    """The comment section of one cluster's live plan."""
    heading = f"\n\n---\n\n### Live plan of `{plan.cluster}` against the cluster\n\n"
    if plan.planned:
        return heading + plan.report.strip() + "\n"
    quoted = plan.report.replace("```", "'''")
    return (
        heading
        + "The cluster could not be planned, so what this change prunes or overwrites there is "
        + "not known; the review fails for this cluster:\n\n```text\n"
        + quoted
        + "\n```\n"
    )
