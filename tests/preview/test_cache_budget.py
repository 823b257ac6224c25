"""`tidegate preview` keeps its render cache under `--cache-max-bytes` / $TIDEGATE_CACHE_MAX_BYTES.

Real previews on a real repository with the pinned tools: a render evicted between two previews is
rendered again and reported the same, and the budget applied after a preview removes what that
preview did not use while keeping what it did.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pytest

from cli import main as cli_main
from cli import preview as cli_preview
from cli import preview_server
from core.render.cache import RenderCache
from core.render.unit import RenderSettings
from tests.preview.gitrepo import commit, configmap, flux_cluster, kustomization, new_repo

PROD = "clusters/production"
WEB = "Kustomization/flux-system/web"
ALL_UNITS = ["Kustomization/flux-system/flux-system", WEB]


@pytest.fixture
def run_preview(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, kustomize_bin: Path, helm_bin: Path
) -> Any:
    """Run `tidegate preview`; return the exit code, the units it rendered and the report."""
    made: list[RenderSettings] = []

    def record(*args: Any, **kwargs: Any) -> RenderSettings:
        made.append(RenderSettings(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(cli_preview, "RenderSettings", record)

    def run(repo: Path, base: str, head: str, *extra: str) -> tuple[int, list[str], str]:
        made.clear()
        report = tmp_path / "report.json"
        code = cli_main.main(
            [
                "preview",
                *("--repo", str(repo), "--base", base, "--head", head),
                *("--output", str(report), "--format", "json"),
                *("--cache-dir", str(tmp_path / "cache")),
                *("--kustomize", str(kustomize_bin), "--helm", str(helm_bin)),
                *extra,
            ]
        )
        rendered = sorted(made[0].observer.rendered) if made else []
        return code, rendered, report.read_text() if report.exists() else ""

    return run


def _repo(tmp_path: Path) -> tuple[Path, str, str]:
    repo, base = new_repo(
        tmp_path / "repo",
        {
            **flux_cluster(),
            f"{PROD}/web.yaml": kustomization("web", "./web"),
            "web/config.yaml": configmap("web-config", "web", color="blue"),
        },
    )
    head = commit(repo, {"web/config.yaml": configmap("web-config", "web", color="red")}, "red")
    return repo, base, head


def _age(root: Path, days: float) -> None:
    when = os.path.getmtime(root) - days * 24 * 3600
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, (when, when))


def test_a_preview_whose_renders_were_evicted_renders_again_and_reports_the_same(
    tmp_path: Path, run_preview: Any
) -> None:
    repo, base, head = _repo(tmp_path)
    first = run_preview(repo, base, head)
    assert run_preview(repo, base, head)[1] == []  # warm: nothing rendered
    RenderCache(tmp_path / "cache").enforce_budget(1, grace=0)

    again = run_preview(repo, base, head)

    assert first[0] == again[0] == 1
    assert again[1] == first[1] == sorted([*ALL_UNITS, WEB])  # all of it, as cold
    assert again[2] == first[2]


def test_the_budget_after_a_preview_removes_only_what_it_did_not_use(
    tmp_path: Path, run_preview: Any
) -> None:
    repo, base, head = _repo(tmp_path)
    assert run_preview(repo, base, base)[1] == ALL_UNITS
    _age(tmp_path / "cache", 2)

    # The head preview reuses every base render but web's, which it renders afresh.
    code, rendered, _ = run_preview(repo, head, head, "--cache-max-bytes", "1")
    assert (code, rendered) == (0, [WEB])

    # Only base's web render went: it was the one entry that preview did not use.
    assert run_preview(repo, base, base)[1] == [WEB]


def test_the_budget_from_the_environment_applies(
    tmp_path: Path, run_preview: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, base, head = _repo(tmp_path)
    run_preview(repo, base, base)
    _age(tmp_path / "cache", 2)
    monkeypatch.setenv("TIDEGATE_CACHE_MAX_BYTES", "1")

    run_preview(repo, head, head)
    monkeypatch.delenv("TIDEGATE_CACHE_MAX_BYTES")

    assert run_preview(repo, base, base)[1] == [WEB]


def test_a_bad_budget_in_the_environment_is_an_input_error(
    tmp_path: Path,
    run_preview: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    repo, base, _ = _repo(tmp_path)
    monkeypatch.setenv("TIDEGATE_CACHE_MAX_BYTES", "lots")

    code, _, _ = run_preview(repo, base, base)

    assert code == 2
    assert "$TIDEGATE_CACHE_MAX_BYTES: 'lots' is not a size" in capsys.readouterr().err


def test_the_preview_service_trims_after_each_job_and_misses_what_it_held_in_memory(
    tmp_path: Path,
    kustomize_bin: Path,
    helm_bin: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One warm preview process: a render it keeps parsed in memory but the budget removed from
    disk is rendered again, not served from memory without its bodies."""
    repo, base, head = _repo(tmp_path)
    made: list[RenderSettings] = []

    def record(*args: Any, **kwargs: Any) -> RenderSettings:
        made.append(RenderSettings(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(cli_preview, "RenderSettings", record)

    def request(revision: str, *extra: str) -> str:
        argv = [
            *("--repo", str(repo), "--base", revision, "--head", revision),
            *("--output", str(tmp_path / "report.json"), "--format", "json"),
            *("--cache-dir", str(tmp_path / "cache")),
            *("--kustomize", str(kustomize_bin), "--helm", str(helm_bin)),
            *extra,
        ]
        return json.dumps({"argv": argv}) + "\n"

    answers = io.StringIO()
    caches = cli_preview.WarmCaches()
    # Cold, then warm: the second request keeps base's renders parsed in memory.
    preview_server.serve(io.StringIO(request(base) + request(base)), answers, caches)
    _age(tmp_path / "cache", 2)
    for cache in caches.caches.values():
        cache._touched.clear()  # two days on disk are two days for the process's marks too
    made.clear()
    requests = request(head, "--cache-max-bytes", "1") + request(base)
    preview_server.serve(io.StringIO(requests), answers, caches)

    codes = [json.loads(line)["code"] for line in answers.getvalue().splitlines()]
    assert codes == [0, 0, 0, 0]
    assert [sorted(settings.observer.rendered) for settings in made] == [[WEB], [WEB]]
