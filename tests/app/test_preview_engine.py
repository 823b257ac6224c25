"""The review worker's warm preview process: reused between jobs, bounded however many run."""

from __future__ import annotations

import gc
import io
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from app.engine import PreviewEngine
from cli import preview_server
from cli.preview import WarmCaches
from core.render import cache as render_cache
from core.render.unit import RenderObserver, RenderSettings
from core.repo import discovery
from core.units import ClusterRender
from tests.preview.gitrepo import commit, configmap, flux_cluster, kustomization, new_repo

PROD = "clusters/production"
PULL_REQUESTS = 8
MEMORY_ENTRIES = 3
KEPT_CLUSTERS = 3


def _fleet(tmp_path: Path) -> tuple[Path, str]:
    """Three apps, each its own Kustomization: a pull request edits one of them."""
    files = {**flux_cluster()}
    for app in ("web", "jobs", "api"):
        files[f"{PROD}/{app}.yaml"] = kustomization(app, f"./{app}")
        files[f"{app}/config.yaml"] = configmap(f"{app}-config", app, color="blue")
    return new_repo(tmp_path / "repo", files)


def _argv(repo: Path, base: str, head: str, out: Path, tools: tuple[Path, Path]) -> list[str]:
    return [
        *("--repo", str(repo), "--base", base, "--head", head),
        *("--format", "markdown", "--output", str(out / "report.md")),
        *("--cache-dir", str(out.parent / "render")),
        *("--kustomize", str(tools[0]), "--helm", str(tools[1]), "--sandbox", "off"),
    ]


def test_many_pull_requests_leave_the_warm_process_the_same_size(
    tmp_path: Path, kustomize_bin: Path, helm_bin: Path
) -> None:
    repo, base = _fleet(tmp_path)
    requests = []
    for number in range(PULL_REQUESTS):
        app = ("web", "jobs", "api")[number % 3]
        head = commit(
            repo, {f"{app}/config.yaml": configmap(f"{app}-config", app, color=f"c{number}")}, "pr"
        )
        out = tmp_path / "reports" / str(number)
        out.mkdir(parents=True)
        argv = _argv(repo, base, head, out, (kustomize_bin, helm_bin))
        requests.append(json.dumps({"argv": argv}) + "\n")
    caches = WarmCaches(memory_entries=MEMORY_ENTRIES)
    sizes = []
    answers = []
    for line in requests:
        answer = io.StringIO()
        preview_server.serve(io.StringIO(line), answer, caches)
        answers.append(json.loads(answer.getvalue()))
        [cache] = caches.caches.values()
        sizes.append(cache.memory_sizes())

    assert [a["code"] for a in answers] == [1] * PULL_REQUESTS, answers[0]["stderr"]
    report = (tmp_path / "reports" / "7" / "report.md").read_text()
    assert "jobs-config" in report
    assert len(caches.caches) == 1, "one warm cache, shared by every pull request"
    # Every pull request adds renders; memory holds the bound, not one more per pull request.
    assert all(
        renders <= MEMORY_ENTRIES and receipts <= MEMORY_ENTRIES for renders, receipts in sizes
    )
    # A kept base's renders are read only when a pull request reaches them: memory fills one
    # render per pull request, then stays at the bound.
    assert sizes[-1] == sizes[MEMORY_ENTRIES] == (MEMORY_ENTRIES, MEMORY_ENTRIES)
    gc.collect()
    alive = [o for o in gc.get_objects() if isinstance(o, (RenderObserver, RenderSettings))]
    assert alive == [], "nothing a preview observed outlives it"


def _stored_renders(cache_dir: Path) -> set[str]:
    """The renders a cache directory holds (one index file each)."""
    return {
        path.name for path in (cache_dir / "renders").rglob("*.json") if ".bodies." not in path.name
    }


def test_a_second_pull_request_on_the_same_base_renders_only_its_edited_unit(
    tmp_path: Path, kustomize_bin: Path, helm_bin: Path
) -> None:
    repo, base = _fleet(tmp_path)
    caches = WarmCaches()
    answers = []
    stored = []
    for number, app in enumerate(("web", "api")):
        head = commit(repo, {f"{app}/config.yaml": configmap(f"{app}-config", app, size="2")}, app)
        out = tmp_path / "reports" / str(number)
        out.mkdir(parents=True)
        line = json.dumps({"argv": _argv(repo, base, head, out, (kustomize_bin, helm_bin))})
        if number == 1:
            [cache] = caches.caches.values()
            memo_hits, kept_hits = cache.memo_hits, cache.kept_hits
            parsed = caches.specs.parsed
        answer = io.StringIO()
        preview_server.serve(io.StringIO(line + "\n"), answer, caches)
        answers.append(json.loads(answer.getvalue()))
        stored.append(_stored_renders(tmp_path / "reports" / "render"))

    assert [a["code"] for a in answers] == [1, 1], answers
    # The base's cluster (its root and three apps) is the one the warm process kept from the
    # first pull request, read without a lookup (`core.render.clusters`). Nothing of the base is
    # rendered again, and of the head only the edited app: one new render.
    assert cache.kept_hits - kept_hits == 1
    assert cache.memo_hits - memo_hits == 0
    assert len(stored[1] - stored[0]) == 1
    # The Flux objects both pull requests render are the same objects, their specs parsed once.
    assert caches.specs.parsed > 0
    assert caches.specs.parsed - parsed == 0
    assert "api-config" in (tmp_path / "reports" / "1" / "report.md").read_text()


def test_the_warm_service_discovers_each_base_once_and_keeps_few(
    tmp_path: Path, kustomize_bin: Path, helm_bin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, first_base = _fleet(tmp_path)
    second_base = commit(repo, {"README.md": "# fleet\n"}, "a new base")
    discovered: list[str] = []
    discover = discovery.discover_cluster

    def counted(path: str, *args: Any, **kwargs: Any) -> ClusterRender:
        discovered.append(path)
        return discover(path, *args, **kwargs)

    monkeypatch.setattr(discovery, "discover_cluster", counted)
    # Three kept clusters in memory at most: a base is kept while it is in use, the oldest go.
    monkeypatch.setattr(render_cache, "_CLUSTERS_IN_MEMORY", KEPT_CLUSTERS)
    caches = WarmCaches()
    per_pull_request = []
    kept = []
    for number, (base, app) in enumerate(
        [(first_base, "web"), (first_base, "api"), (first_base, "jobs"), (second_base, "web")]
    ):
        before = len(discovered)
        head = commit(
            repo, {f"{app}/config.yaml": configmap(f"{app}-config", app, size=str(number))}, app
        )
        out = tmp_path / "reports" / str(number)
        out.mkdir(parents=True)
        line = json.dumps({"argv": _argv(repo, base, head, out, (kustomize_bin, helm_bin))})
        answer = io.StringIO()
        preview_server.serve(io.StringIO(line + "\n"), answer, caches)
        assert json.loads(answer.getvalue())["code"] == 1, answer.getvalue()
        per_pull_request.append(len(discovered) - before)
        [cache] = caches.caches.values()
        kept.append(len(cache._clusters))

    # The first pull request discovers its base's cluster and its head's; the next ones on the
    # same base only their head's; a new base is discovered once more.
    assert per_pull_request == [2, 1, 1, 2]
    # Each pull request keeps its head's cluster too; memory holds the bound, not one more each.
    assert kept == [2, 3, KEPT_CLUSTERS, KEPT_CLUSTERS]


def test_the_engine_keeps_one_process_across_jobs_and_recycles_it(
    tmp_path: Path, kustomize_bin: Path, helm_bin: Path
) -> None:
    repo, base = _fleet(tmp_path)
    head = commit(repo, {"web/config.yaml": configmap("web-config", "web", color="red")}, "pr")
    engine = PreviewEngine(recycle_after=3)
    try:
        codes = []
        for number in range(4):
            out = tmp_path / "reports" / str(number)
            out.mkdir(parents=True)
            code, stderr = engine.preview(_argv(repo, base, head, out, (kustomize_bin, helm_bin)))
            codes.append(code)
        assert codes == [1, 1, 1, 1], stderr
        assert engine.starts == 2, "one process for three previews, then a fresh one"

        code, stderr = engine.preview(["--repo", str(tmp_path / "missing"), "--head", head])
        assert code == 2
        assert "tidegate: error:" in stderr
        assert engine.starts == 2, "a failed preview is an answer, not a dead process"
    finally:
        engine.close()


def _preview_servers() -> list[int]:
    """The pids of this process's `cli.preview_server` children that are still running."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        state, parent = fields[0], int(fields[1])
        if parent == os.getpid() and b"cli.preview_server" in command and state != "Z":
            found.append(int(entry.name))
    return found


def test_a_preview_process_that_died_is_replaced_for_the_next_job(
    tmp_path: Path, kustomize_bin: Path, helm_bin: Path
) -> None:
    repo, base = _fleet(tmp_path)
    head = commit(repo, {"web/config.yaml": configmap("web-config", "web", color="red")}, "pr")
    engine = PreviewEngine()
    try:
        out = tmp_path / "reports" / "1"
        out.mkdir(parents=True)
        assert engine.preview(_argv(repo, base, head, out, (kustomize_bin, helm_bin)))[0] == 1
        [pid] = _preview_servers()
        os.kill(pid, signal.SIGKILL)
        # Wait until the child can be reaped, without reaping it: its leader shows as a zombie
        # in /proc while its other threads are still exiting, and until they are gone the
        # engine's poll still sees it running.
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)

        code, stderr = engine.preview(_argv(repo, base, head, out, (kustomize_bin, helm_bin)))

        assert code == 1, stderr
        assert engine.starts == 2
    finally:
        engine.close()
