"""One-file changes re-render only the units that read the file, through the command line.

`tidegate preview` runs in-process twice on one cache directory: base against itself (cold), then
base against a head that edits a single file. The render settings the command builds are
recorded, so the test reads which units the command actually rendered. Covered: a chart
template and a chart's values file (only that HelmRelease re-renders), and a HelmRelease's own
file (the unit that renders it and the release itself re-render).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cli import main as cli_main
from cli import preview as cli_preview
from core.render.unit import RenderSettings
from tests.preview.gitrepo import commit, configmap, flux_cluster, kustomization, new_repo

PROD = "clusters/production"


def _helm_release(name: str, replicas: int = 1) -> str:
    return (
        "apiVersion: helm.toolkit.fluxcd.io/v2\n"
        "kind: HelmRelease\n"
        f"metadata: {{name: {name}, namespace: flux-system}}\n"
        "spec:\n"
        "  interval: 1h\n"
        f"  targetNamespace: {name}\n"
        "  chart:\n"
        "    spec:\n"
        f"      chart: ./charts/{name}\n"
        "      sourceRef: {kind: GitRepository, name: flux-system}\n"
        f"  values: {{replicas: {replicas}}}\n"
    )


def _chart(name: str) -> dict[str, str]:
    return {
        f"charts/{name}/Chart.yaml": f"apiVersion: v2\nname: {name}\nversion: 1.0.0\n",
        f"charts/{name}/values.yaml": "replicas: 1\nimage: nginx:1.27\n",
        f"charts/{name}/templates/deployment.yaml": (
            "apiVersion: apps/v1\n"
            "kind: Deployment\n"
            "metadata: {name: {{ .Release.Name }}}\n"
            "spec:\n"
            "  replicas: {{ .Values.replicas }}\n"
            "  selector: {matchLabels: {app: {{ .Release.Name }}}}\n"
            "  template:\n"
            "    metadata: {labels: {app: {{ .Release.Name }}}}\n"
            "    spec: {containers: [{name: main, image: {{ .Values.image }}}]}\n"
        ),
    }


@pytest.fixture
def rendered_by_cli(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, kustomize_bin: Path, helm_bin: Path
) -> Any:
    """Run `tidegate preview` and return the exit code and the units it rendered."""
    made: list[RenderSettings] = []

    def record(*args: Any, **kwargs: Any) -> RenderSettings:
        made.append(RenderSettings(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(cli_preview, "RenderSettings", record)

    def run(repo: Path, base: str, head: str) -> tuple[int, list[str]]:
        made.clear()
        code = cli_main.main(
            [
                "preview",
                *("--repo", str(repo), "--base", base, "--head", head),
                *("--output", str(tmp_path / "report.json")),
                *("--cache-dir", str(tmp_path / "cache")),
                *("--kustomize", str(kustomize_bin), "--helm", str(helm_bin)),
            ]
        )
        (settings,) = made
        return code, sorted(settings.observer.rendered)

    return run


def _repo(tmp_path: Path) -> tuple[Path, str]:
    return new_repo(
        tmp_path / "repo",
        {
            **flux_cluster(),
            f"{PROD}/web.yaml": kustomization("web", "./web"),
            f"{PROD}/metrics.yaml": _helm_release("metrics"),
            f"{PROD}/cache.yaml": _helm_release("cache"),
            "web/config.yaml": configmap("web-config", "web", color="blue"),
            **_chart("metrics"),
            **_chart("cache"),
        },
    )


ALL_UNITS = [
    "HelmRelease/flux-system/cache",
    "HelmRelease/flux-system/metrics",
    "Kustomization/flux-system/flux-system",
    "Kustomization/flux-system/web",
]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        pytest.param(
            {
                "charts/metrics/templates/deployment.yaml": _chart("metrics")[
                    "charts/metrics/templates/deployment.yaml"
                ].replace("name: main", "name: app")
            },
            ["HelmRelease/flux-system/metrics"],
            id="chart-template",
        ),
        pytest.param(
            {"charts/metrics/values.yaml": "replicas: 1\nimage: nginx:1.28\n"},
            ["HelmRelease/flux-system/metrics"],
            id="chart-values",
        ),
        pytest.param(
            {f"{PROD}/metrics.yaml": _helm_release("metrics", replicas=3)},
            ["HelmRelease/flux-system/metrics", "Kustomization/flux-system/flux-system"],
            id="release-spec",
        ),
    ],
)
def test_one_file_change_rerenders_only_the_helm_releases_that_read_it(
    tmp_path: Path, rendered_by_cli: Any, edit: dict[str, str | None], expected: list[str]
) -> None:
    repo, base = _repo(tmp_path)
    head = commit(repo, edit, "one file")

    cold_code, cold = rendered_by_cli(repo, base, base)
    warm_code, warm = rendered_by_cli(repo, base, head)

    assert (cold_code, cold) == (0, ALL_UNITS)
    assert warm_code == 1
    assert warm == expected
