"""helm-controller's CRD policies on a chart from the repository, through `tidegate preview`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.preview.conftest import Preview as RunPreview
from tests.preview.gitrepo import commit, flux_cluster, kustomization, new_repo

PROD = "clusters/production"


def _crd(version: str) -> str:
    return f"""
        apiVersion: apiextensions.k8s.io/v1
        kind: CustomResourceDefinition
        metadata: {{name: widgets.example.com}}
        spec:
          group: example.com
          scope: Namespaced
          names: {{kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}}
          versions:
            - name: {version}
              served: true
              storage: true
              schema:
                openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}
    """


def _release(crds: str = "") -> str:
    upgrade = f"  upgrade: {{crds: {crds}}}\n" if crds else ""
    return (
        "apiVersion: helm.toolkit.fluxcd.io/v2\n"
        "kind: HelmRelease\n"
        "metadata: {name: widget, namespace: flux-system}\n"
        "spec:\n"
        "  interval: 10m\n"
        "  targetNamespace: widgets\n"
        "  chart:\n"
        "    spec:\n"
        "      chart: ./charts/widget\n"
        "      sourceRef: {kind: GitRepository, name: flux-system}\n" + upgrade
    )


def _repo(tmp_path: Path, crds: str = "") -> tuple[Path, str]:
    return new_repo(
        tmp_path / "repo",
        {
            **flux_cluster(),
            f"{PROD}/releases.yaml": kustomization("releases", "./releases"),
            "releases/widget.yaml": _release(crds),
            "charts/widget/Chart.yaml": "apiVersion: v2\nname: widget\nversion: 1.0.0\n",
            "charts/widget/crds/widgets.yaml": _crd("v1"),
            "charts/widget/templates/widget.yaml": """
                apiVersion: example.com/v1
                kind: Widget
                metadata: {name: {{ .Release.Name }}}
                spec: {size: 1}
            """,
        },
    )


@pytest.mark.parametrize("policy", ["", "Skip"])
def test_a_changed_chart_crd_is_not_applied_by_default(
    tmp_path: Path, preview: RunPreview, policy: str
) -> None:
    repo, base = _repo(tmp_path, policy)
    head = commit(repo, {"charts/widget/crds/widgets.yaml": _crd("v2")}, "new CRD version")

    outcome = preview(repo, base, head)

    assert outcome.code == 0, outcome.report
    widget = outcome.unit(PROD, "widget")
    assert widget["changes"] == []
    assert widget["skipped"] == 1
    [notice] = widget["notices"]
    assert "CustomResourceDefinition/widgets.example.com changes in the chart's crds/" in notice
    assert f"upgrade.crds is {policy or 'Create'}" in notice
    markdown = preview(repo, base, head, fmt="markdown").report
    assert "helm-controller will not apply the change" in markdown


def test_create_replace_applies_a_changed_chart_crd(tmp_path: Path, preview: RunPreview) -> None:
    repo, base = _repo(tmp_path, "CreateReplace")
    head = commit(repo, {"charts/widget/crds/widgets.yaml": _crd("v2")}, "new CRD version")

    outcome = preview(repo, base, head)

    assert outcome.code == 1, outcome.report
    [change] = outcome.unit(PROD, "widget")["changes"]
    assert (change["action"], change["kind"]) == ("update", "CustomResourceDefinition")
    assert change["fields"] == ["spec.versions[0].name"]


def test_the_chart_crd_gives_its_custom_resources_their_namespace(
    tmp_path: Path, preview: RunPreview
) -> None:
    repo, base = _repo(tmp_path)
    head = commit(repo, {"charts/widget/templates/widget.yaml": None}, "drop the widget")

    outcome = preview(repo, base, head)

    assert outcome.code == 1, outcome.report
    assert (PROD, "widget", "delete", "Widget", "widgets/widgets-widget") in outcome.changes()
