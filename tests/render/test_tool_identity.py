"""A render is keyed by the content of the tool that made it, not by the tool's path.

The attack on the old key is an ordinary upgrade: a new kustomize installed at the same path kept
serving the old version's renders. Each test below fails if the identity falls back to naming a
binary by path (or by path, size and modification time).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from core import preview as engine
from core.fetch import FetchPolicy
from core.render import tool_identity
from core.render.cache import RenderCache
from core.render.unit import RenderOptions, RenderSettings
from core.repo.git import Repository
from tests.preview.gitrepo import configmap, flux_cluster, kustomization, new_repo


@pytest.fixture(autouse=True)
def _fresh_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts as a new process would: nothing remembered in memory."""
    monkeypatch.setattr(tool_identity, "_known", {})


def _replace_keeping_times(path: Path, content: bytes) -> None:
    """Write new bytes at the same path and put the old modification time back (as `cp -p`)."""
    before = path.stat()
    path.write_bytes(content)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_the_same_bytes_at_two_paths_have_one_identity(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"tool v1")
    (tmp_path / "b").write_bytes(b"tool v1")

    assert tool_identity.identify(tmp_path / "a") == tool_identity.identify(tmp_path / "b")
    assert tool_identity.identify(tmp_path / "a").startswith("sha256:")


def test_a_binary_replaced_with_the_same_size_and_time_gets_a_new_identity(
    tmp_path: Path,
) -> None:
    tool = tmp_path / "kustomize"
    tool.write_bytes(b"tool v1")
    first = tool_identity.identify(tool, tmp_path / "memo")

    _replace_keeping_times(tool, b"tool v2")

    assert tool_identity.identify(tool, tmp_path / "memo") != first


def test_a_reinstalled_binary_is_hashed_again_and_has_its_old_identity(tmp_path: Path) -> None:
    tool = tmp_path / "kustomize"
    tool.write_bytes(b"tool v1")
    first = tool_identity.identify(tool, tmp_path / "memo")

    tool.unlink()
    tool.write_bytes(b"tool v1")  # a CI job installing the same release again

    assert tool_identity.identify(tool, tmp_path / "memo") == first


def test_a_new_process_takes_the_digest_from_the_memo_without_hashing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tool = tmp_path / "helm"
    tool.write_bytes(b"helm v3")
    first = tool_identity.identify(tool, tmp_path / "memo")
    monkeypatch.setattr(tool_identity, "_known", {})

    def no_hashing(*args: object) -> str:
        raise AssertionError("hashed although the memo knew the binary")

    monkeypatch.setattr(tool_identity, "_hash", no_hashing)

    assert tool_identity.identify(tool, tmp_path / "memo") == first


def test_a_damaged_memo_is_not_trusted(tmp_path: Path) -> None:
    tool = tmp_path / "helm"
    tool.write_bytes(b"helm v3")
    first = tool_identity.identify(tool, tmp_path / "memo")
    [entry] = (tmp_path / "memo").iterdir()
    entry.write_text("not a digest")

    tool_identity._known.clear()

    assert tool_identity.identify(tool, tmp_path / "memo") == first


def test_a_missing_binary_is_named_not_raised(tmp_path: Path) -> None:
    assert tool_identity.identify(tmp_path / "nowhere") == f"missing:{tmp_path / 'nowhere'}"


def _preview(repo: Path, head: str, cache_dir: Path, kustomize: Path, helm: Path) -> list[str]:
    """Preview head against itself with a new cache object; return the units rendered."""
    options = RenderOptions(
        kustomize=kustomize, helm=helm, fetch_policy=FetchPolicy(allowed_hosts=None)
    )
    settings = RenderSettings(options, RenderCache(cache_dir))
    with Repository(repo) as git_repo:
        engine.run_preview(git_repo, engine.PreviewRequest(base=head, head=head), settings)
    return sorted(settings.observer.rendered)


def test_a_kustomize_upgraded_at_the_same_path_renders_again(
    tmp_path: Path, kustomize_bin: Path, helm_bin: Path
) -> None:
    repo, head = new_repo(
        tmp_path / "repo",
        {
            **flux_cluster("production"),
            "clusters/production/apps.yaml": kustomization("web", "./apps/web"),
            "apps/web/kustomization.yaml": "resources: [settings.yaml]\n",
            "apps/web/settings.yaml": configmap("web", "apps", size="1"),
        },
    )
    tool = tmp_path / "bin" / "kustomize"
    tool.parent.mkdir()
    shutil.copy2(kustomize_bin, tool)
    cache = tmp_path / "cache"

    first = _preview(repo, head, cache, tool, helm_bin)
    assert first, "the first preview renders its units"
    tool_identity._known.clear()
    assert _preview(repo, head, cache, tool, helm_bin) == []  # the same tool: all cached

    # Another build at the same path: trailing bytes leave an ELF binary runnable.
    _replace_keeping_times(tool, kustomize_bin.read_bytes() + b"\0")
    tool_identity._known.clear()

    assert _preview(repo, head, cache, tool, helm_bin) == first
