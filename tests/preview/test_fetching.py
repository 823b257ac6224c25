"""`tidegate preview` fetching charts from hostile URLs and from sources that cannot be reached.

Real chart repositories (packaged by the pinned helm) are served over HTTP on loopback. Every
attack asserts the exit code, that the message names the cause, that the target saw no request,
and that nothing the servers sent (bodies, reason phrases) reaches stdout, stderr, JSON or
Markdown.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.fetch.servers import LEAKY_BODY, Route, Server, serve
from tests.preview.conftest import Outcome, Preview
from tests.preview.gitrepo import commit, flux_cluster, new_repo
from tests.render.test_helm import build_repository

PROD = "clusters/production"


@pytest.fixture(scope="module")
def chart_files(helm_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """A chart repository's files (index.yaml and archives), packaged by helm."""
    directory = build_repository(helm_bin, tmp_path_factory.mktemp("charts"), ("1.0.0", "1.1.0"))
    return {f"/{p.name}": p.read_bytes() for p in directory.iterdir()}


def _static(files: dict[str, bytes], prefix: str = "") -> dict[str, Route]:
    def reply(body: bytes) -> Route:
        return lambda h: h.reply(200, body)

    return {prefix + path: reply(body) for path, body in files.items()}


@pytest.fixture
def charts(chart_files: dict[str, bytes]) -> Iterator[Server]:
    with serve(_static(chart_files)) as server:
        yield server


@pytest.fixture
def victim() -> Iterator[Server]:
    """An internal service an attacker would like to reach."""
    with serve({"/": lambda h: h.reply(200, LEAKY_BODY)}) as server:
        yield server


def _repository(url: str) -> str:
    return f"""
        apiVersion: source.toolkit.fluxcd.io/v1
        kind: HelmRepository
        metadata: {{name: charts, namespace: flux-system}}
        spec: {{interval: 1h, url: "{url}"}}
    """


def _release(chart: str = "webapp", version: str = "1.x", replicas: int = 1) -> str:
    return f"""
        apiVersion: helm.toolkit.fluxcd.io/v2
        kind: HelmRelease
        metadata: {{name: web, namespace: flux-system}}
        spec:
          interval: 10m
          targetNamespace: apps
          chart:
            spec:
              chart: "{chart}"
              version: "{version}"
              sourceRef: {{kind: HelmRepository, name: charts}}
          values: {{replicas: {replicas}}}
    """


def _settings(value: str) -> str:
    return f"""
        apiVersion: v1
        kind: ConfigMap
        metadata: {{name: settings, namespace: flux-system}}
        data: {{mode: {value}}}
    """


def _operator(tmp_path: Path, text: str = "fetch: {allowLoopback: true}\n") -> list[str]:
    path = tmp_path / "operator.yaml"
    path.write_text(text)
    return ["--config", str(path)]


def _clean(*outcomes: Outcome) -> None:
    for outcome in outcomes:
        text = outcome.report + outcome.stderr
        assert LEAKY_BODY.decode() not in text
        assert "Leaky" not in text
        assert "Errno" not in text
        assert "Traceback" not in text


def _web(outcome: Outcome) -> dict[str, object]:
    return outcome.unit(PROD, "web")


# ------------------------------------------------------------------------------------------
# A pull request pointing a chart repository at an internal address.


def test_a_new_chart_repository_on_loopback_is_refused_by_the_allow_list(
    tmp_path: Path, preview: Preview, victim: Server
) -> None:
    repo, base = new_repo(tmp_path / "repo", {**flux_cluster(), f"{PROD}/s.yaml": _settings("a")})
    head = commit(
        repo,
        {f"{PROD}/charts.yaml": _repository(victim.url), f"{PROD}/web.yaml": _release()},
        "add a chart from an internal address",
    )

    out = preview(repo, base, head)
    md = preview(repo, base, head, fmt="markdown")

    assert (out.code, md.code) == (2, 2)
    web = _web(out)
    assert web["status"] == "failed"
    assert f"refused: host 127.0.0.1:{victim.port} is not on the allow-list" in str(web["error"])
    assert web["reason"] == "source"
    assert f"host 127.0.0.1:{victim.port} is not on the allow-list" in md.report
    assert victim.seen == []
    _clean(out, md)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1", "2130706433", "0x7f.1", "localhost"])
def test_an_allowed_name_for_loopback_is_refused_by_address(
    tmp_path: Path, preview: Preview, victim: Server, host: str
) -> None:
    repo, base = new_repo(tmp_path / "repo", {**flux_cluster(), f"{PROD}/s.yaml": _settings("a")})
    url = f"http://{host}:{victim.port}"
    head = commit(
        repo, {f"{PROD}/charts.yaml": _repository(url), f"{PROD}/web.yaml": _release()}, "add"
    )

    out = preview(repo, base, head, "--allow-host", f"{host}:{victim.port}")

    assert out.code == 2
    web = _web(out)
    assert web["status"] == "failed"
    assert "is a loopback address" in str(web["error"])
    assert "refused: " in str(web["error"])
    assert victim.seen == []
    _clean(out)


def test_a_redirect_to_the_metadata_address_is_refused(
    tmp_path: Path, preview: Preview, chart_files: dict[str, bytes]
) -> None:
    routes = _static(chart_files)
    routes["/moved/index.yaml"] = lambda h: h.redirect("http://169.254.169.254/latest/meta-data/")
    with serve(routes) as charts:
        repo, base = new_repo(
            tmp_path / "repo",
            {
                **flux_cluster(),
                f"{PROD}/charts.yaml": _repository(charts.url),
                f"{PROD}/web.yaml": _release(),
            },
        )
        # Same host as the base uses (so trusted), but its index now redirects.
        head = commit(repo, {f"{PROD}/charts.yaml": _repository(f"{charts.url}/moved")}, "move")
        operator = _operator(tmp_path)
        out = preview(repo, base, head, *operator, "--allow-host", "169.254.169.254")
        md = preview(repo, base, head, *operator, fmt="markdown")

    assert (out.code, md.code) == (2, 2)
    error = str(_web(out)["error"])
    assert "at head:" in error
    assert "refused: 169.254.169.254 is a link-local address" in error
    assert "refused: host 169.254.169.254:80 is not on the allow-list" in md.report
    _clean(out, md)


def test_a_traversal_chart_name_is_refused(
    tmp_path: Path, preview: Preview, charts: Server
) -> None:
    files = {
        **flux_cluster(),
        f"{PROD}/charts.yaml": _repository(charts.url),
        f"{PROD}/web.yaml": _release(),
    }
    repo, base = new_repo(tmp_path / "repo", files)
    head = commit(repo, {f"{PROD}/web.yaml": _release(chart="../../../../escape")}, "escape")

    out = preview(repo, base, head, *_operator(tmp_path))

    assert out.code == 2
    assert "invalid chart name '../../../../escape'" in str(_web(out)["error"])
    assert not any(p.name.startswith("escape") for p in tmp_path.rglob("*"))
    _clean(out)


# ------------------------------------------------------------------------------------------
# Trust: hosts the base uses, and hosts a pull request introduces.


def test_hosts_the_base_uses_are_trusted_and_new_ones_need_the_operator(
    tmp_path: Path, preview: Preview, charts: Server, chart_files: dict[str, bytes]
) -> None:
    files = {
        **flux_cluster(),
        f"{PROD}/charts.yaml": _repository(charts.url),
        f"{PROD}/web.yaml": _release(version="1.0.x"),
    }
    repo, base = new_repo(tmp_path / "repo", files)
    operator = _operator(tmp_path)
    with serve(_static(chart_files)) as mirror:
        bump = commit(repo, {f"{PROD}/web.yaml": _release(version="1.1.x")}, "bump the chart")
        moved = commit(repo, {f"{PROD}/charts.yaml": _repository(mirror.url)}, "use a mirror")

        same_host = preview(repo, base, bump, *operator)
        new_host = preview(repo, base, moved, *operator)
        assert mirror.seen == []
        allowed = preview(repo, base, moved, *operator, "--allow-host", f"127.0.0.1:{mirror.port}")
        assert mirror.seen != []

    assert same_host.code == 1
    assert (_web(same_host)["status"], _web(same_host)["error"]) == ("unchanged", None)
    assert new_host.code == 2
    assert f"host 127.0.0.1:{mirror.port} is not on the allow-list" in str(_web(new_host)["error"])
    assert allowed.code == 1
    assert (_web(allowed)["status"], _web(allowed)["error"]) == ("unchanged", None)
    _clean(same_host, new_host, allowed)


def test_only_the_base_revisions_config_file_can_allow_a_host(
    tmp_path: Path, preview: Preview, charts: Server, chart_files: dict[str, bytes]
) -> None:
    with serve(_static(chart_files)) as mirror:
        allow = f'fetch: {{allowHosts: ["127.0.0.1:{mirror.port}"]}}\n'
        files = {
            **flux_cluster(),
            f"{PROD}/charts.yaml": _repository(charts.url),
            f"{PROD}/web.yaml": _release(),
        }
        repo, base = new_repo(tmp_path / "repo", files)
        # The pull request allows its own host: ignored, the head cannot widen the list.
        sneaky = commit(
            repo,
            {".tidegate.yaml": allow, f"{PROD}/charts.yaml": _repository(mirror.url)},
            "allow myself",
        )
        refused = preview(repo, base, sneaky, *_operator(tmp_path))
        assert mirror.seen == []

        merged = commit(repo, {f"{PROD}/charts.yaml": _repository(charts.url)}, "config only")
        head = commit(repo, {f"{PROD}/charts.yaml": _repository(mirror.url)}, "use the mirror")
        accepted = preview(repo, merged, head, *_operator(tmp_path))

    assert refused.code == 2
    assert "is not on the allow-list" in str(_web(refused)["error"])
    assert accepted.code == 1
    assert (_web(accepted)["status"], _web(accepted)["error"]) == ("unchanged", None)
    _clean(refused, accepted)


def test_a_chart_host_the_base_downloaded_from_is_trusted_for_the_head(
    tmp_path: Path, preview: Preview, chart_files: dict[str, bytes]
) -> None:
    archives = {path: body for path, body in chart_files.items() if path.endswith(".tgz")}
    with serve(_static(archives)) as store, serve(_static(archives)) as other:
        document = yaml.safe_load(chart_files["/index.yaml"])
        for entry in document["entries"]["webapp"]:
            # 1.0.0 is stored where the base downloads from; 1.1.0 on a host it never used.
            where = store if entry["version"] == "1.0.0" else other
            entry["urls"] = [f"{where.url}/{entry['urls'][0]}"]
        index = {"/index.yaml": yaml.safe_dump(document).encode()}
        with serve(_static(index)) as charts:
            files = {
                **flux_cluster(),
                f"{PROD}/charts.yaml": _repository(charts.url),
                f"{PROD}/web.yaml": _release(version="1.0.x"),
            }
            repo, base = new_repo(tmp_path / "repo", files)
            # New values, same chart: the head needs the archive the base got from `store`.
            scale = commit(repo, {f"{PROD}/web.yaml": _release(version="1.0.x", replicas=3)}, "x")
            bump = commit(repo, {f"{PROD}/web.yaml": _release(version="1.1.x", replicas=3)}, "y")
            operator = _operator(tmp_path)
            scaled = preview(repo, base, scale, *operator)
            bumped = preview(repo, scale, bump, *operator)

    assert scaled.code == 1
    assert (_web(scaled)["status"], _web(scaled)["error"]) == ("rendered", None)
    assert [path for path, _ in store.seen] == ["/webapp-1.0.0.tgz"]
    assert bumped.code == 2
    assert f"host 127.0.0.1:{other.port} is not on the allow-list" in str(_web(bumped)["error"])
    assert other.seen == []
    _clean(scaled, bumped)


# ------------------------------------------------------------------------------------------
# A source that cannot be reached.


@pytest.fixture
def down() -> Iterator[Server]:
    """A chart repository that answers 503 (with a body that must not leak)."""
    with serve({"/index.yaml": lambda h: h.reply(503, LEAKY_BODY)}) as server:
        yield server


def _unreachable_repo(
    tmp_path: Path, url: str, base_config: str | None = None
) -> tuple[Path, str, str]:
    files = {
        **flux_cluster(),
        f"{PROD}/charts.yaml": _repository(url),
        f"{PROD}/web.yaml": _release(),
        f"{PROD}/s.yaml": _settings("a"),
    }
    if base_config is not None:
        files[".tidegate.yaml"] = base_config
    repo, base = new_repo(tmp_path / "repo", files)
    head = commit(repo, {f"{PROD}/s.yaml": _settings("b")}, "change a setting")
    return repo, base, head


def test_an_unavailable_source_fails_the_preview_by_default(
    tmp_path: Path, preview: Preview, down: Server
) -> None:
    repo, base, head = _unreachable_repo(tmp_path, down.url)

    out = preview(repo, base, head, *_operator(tmp_path))
    # Base and head both need the index: the failure is remembered, so it was fetched once.
    assert [path for path, _ in down.seen] == ["/index.yaml"]
    md = preview(repo, base, head, *_operator(tmp_path), fmt="markdown")

    assert (out.code, md.code) == (2, 2)
    web = _web(out)
    assert web["status"] == "unavailable"
    assert web["unavailableSource"] == f"{down.url}/index.yaml"
    assert f"source unavailable: {down.url}/index.yaml: HTTP 503" in str(web["error"])
    assert web["changes"] == []
    data = out.data
    assert (data["failed"], data["unavailableSources"]) == (True, "fail")
    assert data["summary"]["unavailable"] == 1
    assert data["summary"]["failed"] == 0
    assert out.unit(PROD, "flux-system")["status"] == "rendered"
    assert "❌ **1 unit could not be previewed: a source could not be reached" in md.report
    assert "| ❌ **1** |" in md.report
    _clean(out, md)


def test_unavailable_sources_can_be_skipped_by_the_operator(
    tmp_path: Path, preview: Preview, down: Server
) -> None:
    repo, base, head = _unreachable_repo(tmp_path, down.url)

    out = preview(repo, base, head, *_operator(tmp_path), "--unavailable-sources", "skip")
    md = preview(
        repo, base, head, *_operator(tmp_path), "--unavailable-sources", "skip", fmt="markdown"
    )

    assert (out.code, md.code) == (1, 1)
    assert _web(out)["status"] == "unavailable"
    assert (out.data["failed"], out.data["unavailableSources"]) == (False, "skip")
    assert "⚠️ **1 unit NOT previewed: a source could not be reached." in md.report
    assert f"{down.url}/index.yaml" in md.report
    assert "`ConfigMap/flux-system/settings`" in md.report
    _clean(out, md)


def test_skipping_comes_from_the_base_config_never_from_the_head(
    tmp_path: Path, preview: Preview, down: Server
) -> None:
    skip = "fetch: {unavailableSources: skip}\n"
    repo, base, head = _unreachable_repo(tmp_path, down.url, base_config=skip)
    from_base = preview(repo, base, head, *_operator(tmp_path))
    # The operator's flag wins over the repository's file.
    overridden = preview(repo, base, head, *_operator(tmp_path), "--unavailable-sources", "fail")

    other, other_base, _ = _unreachable_repo(tmp_path / "other", down.url)
    sneaky = commit(other, {".tidegate.yaml": skip}, "skip my own failures")
    from_head = preview(other, other_base, sneaky, *_operator(tmp_path))

    assert (from_base.code, from_base.data["unavailableSources"]) == (1, "skip")
    assert (overridden.code, overridden.data["unavailableSources"]) == (2, "fail")
    assert (from_head.code, from_head.data["unavailableSources"]) == (2, "fail")
    _clean(from_base, overridden, from_head)


def test_a_refused_host_is_never_skipped_as_unavailable(
    tmp_path: Path, preview: Preview, victim: Server
) -> None:
    repo, base = new_repo(tmp_path / "repo", {**flux_cluster(), f"{PROD}/s.yaml": _settings("a")})
    head = commit(
        repo, {f"{PROD}/charts.yaml": _repository(victim.url), f"{PROD}/web.yaml": _release()}, "x"
    )

    out = preview(repo, base, head, "--unavailable-sources", "skip")

    assert out.code == 2
    assert _web(out)["status"] == "failed"
    _clean(out)
