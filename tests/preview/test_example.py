"""The embedded example pull request, previewed end to end with the real tools.

Covers: every object action on a realistic repository (update through a shared base and through
substitution, delete under prune, orphan under `prune: false`, move between Kustomizations, a
HelmRelease chart from the repository, an added unit), Secret masking in every output format and
on stderr, the Markdown summary, exit codes, and the `demo` command itself.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cli import demo
from cli import main as cli_main
from tests.preview.conftest import Preview

PROD, STAGING = "clusters/production", "clusters/staging"
SECRET_VALUES = (
    "example-production-token-v1",
    "example-production-token-v2",
    "example-staging-token-v1",
)


@pytest.fixture(scope="module")
def example_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("example") / "fleet"
    demo.build_example_repo(repo)
    return repo


def test_example_reports_every_action(example_repo: Path, preview: Preview) -> None:
    outcome = preview(example_repo, "main", "pull-request")

    # The example commits a Secret in clear text, which the gate blocks.
    assert outcome.code == 3, outcome.stderr
    blocking = [(f["rule"], f["name"]) for f in outcome.data["findings"] if f["blocking"]]
    assert blocking == [("GP011", "podinfo-token")]
    changes = outcome.changes()
    assert (PROD, "apps", "update", "Deployment", "apps/podinfo") in changes
    assert (STAGING, "apps", "update", "Deployment", "apps/podinfo") in changes
    assert (PROD, "apps", "update", "Secret", "apps/podinfo-token") in changes
    assert (PROD, "apps", "delete", "Deployment", "apps/redis") in changes
    assert (STAGING, "apps", "delete", "Deployment", "apps/redis") not in changes
    assert (PROD, "legacy", "orphan", "ConfigMap", "apps/legacy-settings") in changes
    assert (PROD, "infrastructure", "move", "ConfigMap", "apps/feature-flags") in changes
    assert (PROD, "metrics", "update", "Deployment", "monitoring/metrics-agent") in changes
    assert (STAGING, "canary", "create", "Deployment", "apps/podinfo-canary") in changes
    assert outcome.unit(STAGING, "canary")["status"] == "added"
    assert outcome.data["summary"]["failed"] == 0


def test_example_update_names_fields_and_diffs_the_image(
    example_repo: Path, preview: Preview
) -> None:
    outcome = preview(example_repo, "main", "pull-request")

    podinfo = next(
        c
        for c in outcome.unit(PROD, "apps")["changes"]
        if c["name"] == "podinfo" and c["kind"] == "Deployment"
    )
    assert podinfo["fields"] == ["spec.template.spec.containers[0].image"]
    lines = [line.replace(" ", "") for line in podinfo["diff"].splitlines()]
    assert "-image:ghcr.io/stefanprodan/podinfo:6.7.0" in lines
    assert "+image:ghcr.io/stefanprodan/podinfo:6.7.1" in lines
    moved = next(
        c for c in outcome.unit(PROD, "infrastructure")["changes"] if c["action"] == "move"
    )
    assert "legacy" in str(moved["movedFrom"])


@pytest.mark.parametrize("fmt", ["json", "markdown"])
def test_example_never_shows_a_secret_value(example_repo: Path, preview: Preview, fmt: str) -> None:
    outcome = preview(example_repo, "main", "pull-request", fmt=fmt)

    for value in SECRET_VALUES:
        assert value not in outcome.report
        assert value not in outcome.stderr
    assert "tidegate:masked" not in outcome.report
    assert "*** (before)" in outcome.report
    assert "*** (after)" in outcome.report


def test_example_markdown_leads_with_the_summary_and_deletions(
    example_repo: Path, preview: Preview
) -> None:
    outcome = preview(example_repo, "main", "pull-request", fmt="markdown")

    assert outcome.code == 3
    assert outcome.report.index("Policy gate failed") < outcome.report.index("| Cluster |")
    first_details = outcome.report.index("<details")
    assert outcome.report.index(PROD) < first_details
    assert outcome.report.index("redis") < first_details, "deletions must show above the fold"


def test_example_same_revision_has_no_changes(example_repo: Path, preview: Preview) -> None:
    outcome = preview(example_repo, "main", "main")

    assert outcome.code == 0
    assert outcome.changes() == []


DEMO_SUMMARY = """\
| Cluster | Created | Updated | Deleted | Orphaned | Moved | Failed units | Source unavailable |
|---|---:|---:|---:|---:|---:|---:|---:|
| `clusters/production` | 1 | 4 | ⚠️ **1** | 1 | 1 | 0 | 0 |
| `clusters/staging` | 3 | 3 | 0 | 0 | 0 | 0 | 0 |

⚠️ **1 object will be deleted:**
- `clusters/production` `Kustomization/flux-system/apps`: `Deployment/apps/redis`

⚠️ **1 object will be orphaned (left in the cluster, no longer pruned):**
- `clusters/production` `Kustomization/flux-system/legacy`: `ConfigMap/apps/legacy-settings`
"""

# Every cluster, unit and change of the example, in the order the report shows them.
DEMO_STORY = [
    "#### `clusters/production`",
    "HelmRelease/flux-system/metrics · rendered · 1 updated",
    "- **update** `Deployment/monitoring/metrics-agent`: `spec.replicas`",
    "Kustomization/flux-system/apps · rendered · 2 updated · 1 deleted",
    "- **update** `Secret/apps/podinfo-token`: `data.token`",
    "- **update** `Deployment/apps/podinfo`: `spec.template.spec.containers[0].image`",
    "- **delete** `Deployment/apps/redis`",
    "Kustomization/flux-system/infrastructure · rendered · 1 updated · 1 moved in",
    "- **move** `ConfigMap/apps/feature-flags` from `Kustomization/flux-system/legacy`:"
    ' `data.checkout_v2`, `metadata.labels["kustomize.toolkit.fluxcd.io/name"]`',
    "- **update** `HelmRelease/flux-system/metrics`: `spec.values.replicas`",
    "Kustomization/flux-system/legacy · rendered · 1 created · 1 orphaned",
    "- **orphan** `ConfigMap/apps/legacy-settings`",
    "- **create** `ConfigMap/apps/placeholder`",
    "#### `clusters/staging`",
    "HelmRelease/flux-system/metrics · rendered · 1 updated",
    "- **update** `Deployment/monitoring/metrics-agent`: `spec.replicas`",
    "Kustomization/flux-system/apps · rendered · 1 updated",
    "- **update** `Deployment/apps/podinfo`: `spec.template.spec.containers[0].image`",
    "Kustomization/flux-system/canary · added · 1 created",
    "- **create** `Deployment/apps/podinfo-canary`",
    "Kustomization/flux-system/flux-system · rendered · 1 created",
    "- **create** `Kustomization/flux-system/canary`",
    "Kustomization/flux-system/infrastructure · rendered · 1 created · 1 updated",
    "- **create** `ConfigMap/apps/feature-flags`",
    "- **update** `HelmRelease/flux-system/metrics`: `spec.values.replicas`",
]


def _story(markdown: str) -> list[str]:
    """The cluster headings, unit summaries and change lines of a Markdown report, in order."""
    story = []
    for line in markdown.splitlines():
        if line.startswith(("#### ", "- **")):
            story.append(line)
        elif line.startswith("<summary>"):
            story.append(re.sub(r"</?(summary|b)>", "", line))
    return story


def test_demo_command_prints_the_preview(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.main(["demo", "--preview-only", "--format", "markdown"]) == 0

    captured = capsys.readouterr()
    out = captured.out
    assert out.startswith("<!-- tidegate:preview -->\n\n### Tidegate preview\n")
    assert DEMO_SUMMARY in out
    assert _story(out) == DEMO_STORY
    assert "*** (before)" in out
    assert "*** (after)" in out
    for value in SECRET_VALUES:
        assert value not in out
        assert value not in captured.err
