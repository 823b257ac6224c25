"""The CI examples in docs/ci.md do what the page says.

Each job's shell runs for real, with `tidegate`, `gh` and `curl` replaced by small scripts: the
`tidegate` stand-in parses its arguments with Tidegate's own parser (so a flag the examples use
must exist), writes the report or not, and exits with the code under test. The jobs must post the
report whenever one was written, pass on exit 0 and 1, and fail on 2 and 3. The cache each job
keeps must be the directory Tidegate uses, and the default render cache must live inside it. On
a push to the default branch the GitHub job must render the pushed commit into the cache pull
requests restore from, and comment nowhere.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from cli import preview

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "ci.md"

_TIDEGATE = """#!{python}
import os, sys
sys.path.insert(0, {root!r})
from cli.main import build_parser
args = build_parser().parse_args(sys.argv[1:])
assert args.command == "preview" and args.output is not None, sys.argv
if os.environ.get("FAKE_ARGS"):
    open(os.environ["FAKE_ARGS"], "w").write(" ".join(sys.argv[1:]))
if os.environ["FAKE_REPORT"] == "1":
    args.output.write_text("## preview\\n")
sys.exit(int(os.environ["FAKE_EXIT"]))
"""

_RECORDER = """#!/bin/sh
echo "$0 $*" >> "$CALLS"
"""


def _blocks() -> list[Any]:
    text = DOC.read_text(encoding="utf-8")
    return [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", text, re.S)]


def _github() -> dict[str, Any]:
    workflow: dict[str, Any] = _blocks()[0]
    return workflow


def _gitlab() -> dict[str, Any]:
    job: dict[str, Any] = _blocks()[1]["tidegate-preview"]
    return job


def _step(job: dict[str, Any], name: str) -> dict[str, Any]:
    step: dict[str, Any] = next(s for s in job["steps"] if s.get("name") == name)
    return step


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "bin"
    directory.mkdir()
    scripts = {
        "tidegate": _TIDEGATE.format(python=sys.executable, root=str(ROOT)),
        "gh": _RECORDER,
        "curl": _RECORDER,
    }
    for name, text in scripts.items():
        path = directory / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return directory


def _run(script: str, bin_dir: Path, work: Path, env: dict[str, str]) -> tuple[int, list[str]]:
    """Run a job's script the way the CI shell does (errexit, pipefail); return exit and calls."""
    calls = work / "calls"
    calls.touch()
    full = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "CALLS": str(calls),
        "HOME": str(work),
        **env,
    }
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=work,
        env=full,
        check=False,
        capture_output=True,
        text=True,
    )
    return done.returncode, calls.read_text().splitlines()


@pytest.mark.parametrize(("code", "passes"), [(0, True), (1, True), (2, False), (3, False)])
def test_github_preview_step_passes_only_on_success(
    bin_dir: Path, tmp_path: Path, code: int, passes: bool
) -> None:
    step = _step(_github()["jobs"]["preview"], "preview")
    summary, output = tmp_path / "summary", tmp_path / "output"
    env = {
        "BASE": "base-sha",
        "HEAD": "head-sha",
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_OUTPUT": str(output),
        "FAKE_EXIT": str(code),
        "FAKE_REPORT": "1" if code != 2 else "0",
    }
    status, _calls = _run(step["run"], bin_dir, tmp_path, env)
    assert (status == 0) is passes
    assert output.read_text() == f"status={code}\n"
    if code != 2:
        assert summary.read_text() == "## preview\n"
    else:
        assert not summary.exists()


@pytest.mark.parametrize("report", [True, False])
def test_github_comment_step_posts_the_report_when_written(
    bin_dir: Path, tmp_path: Path, report: bool
) -> None:
    job = _github()["jobs"]["preview"]
    step = _step(job, "comment")
    if report:
        (tmp_path / "preview.md").write_text("## preview\n")
    status, calls = _run(step["run"], bin_dir, tmp_path, {"PR": "7", "GH_TOKEN": "t"})
    assert status == 0
    expected = [f"{bin_dir}/gh pr comment 7 --body-file preview.md"] if report else []
    assert calls == expected
    # It must run after a failed preview too, or an error would never reach the reviewer.
    assert step["if"].startswith("${{ always()")


def test_github_scripts_take_pull_request_values_only_from_the_environment() -> None:
    # Expressions expanded into a script are a script injection with hostile branch names.
    for step in _github()["jobs"]["preview"]["steps"]:
        assert "${{" not in step.get("run", "")


def _uses(job: dict[str, Any], action: str) -> dict[str, Any]:
    step: dict[str, Any] = next(
        s for s in job["steps"] if str(s.get("uses", "")).startswith(f"{action}@")
    )
    return step


def test_github_caches_the_directory_tidegate_uses() -> None:
    job = _github()["jobs"]["preview"]
    cache = _uses(job, "actions/cache")
    assert cache["with"]["path"] == job["env"]["TIDEGATE_CACHE_DIR"]
    assert cache["with"]["key"].startswith(cache["with"]["restore-keys"])
    assert cache["with"]["key"] != cache["with"]["restore-keys"]
    assert _uses(job, "actions/checkout")["with"]["fetch-depth"] == 0


def test_github_pull_requests_restore_what_the_default_branch_saved() -> None:
    # One job on both events: a push to main saves its renders under the same key and restore
    # prefix that a pull request's run then restores from.
    workflow: dict[Any, Any] = _github()
    triggers = workflow[True]  # PyYAML reads the bare key `on` as a boolean
    assert set(triggers) == {"pull_request", "push"}
    assert triggers["push"]["branches"] == ["main"]
    assert list(workflow["jobs"]) == ["preview"]
    assert "if" not in workflow["jobs"]["preview"]


@pytest.mark.parametrize(("code", "passes"), [(0, True), (1, True), (2, False), (3, False)])
def test_github_push_renders_the_pushed_commit_and_comments_nowhere(
    bin_dir: Path, tmp_path: Path, code: int, passes: bool
) -> None:
    job = _github()["jobs"]["preview"]
    step = _step(job, "preview")
    # On a push there is no pull request: both revisions fall back to the pushed commit.
    assert step["env"]["BASE"] == "${{ github.event.pull_request.base.sha || github.sha }}"
    assert step["env"]["HEAD"] == "${{ github.event.pull_request.head.sha || github.sha }}"
    assert "github.event.pull_request.head.repo.full_name" in _step(job, "comment")["if"]
    log = tmp_path / "args"
    env = {
        "BASE": "pushed-sha",
        "HEAD": "pushed-sha",
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"),
        "GITHUB_OUTPUT": str(tmp_path / "output"),
        "FAKE_EXIT": str(code),
        "FAKE_REPORT": "0",
        "FAKE_ARGS": str(log),
    }
    status, _calls = _run(step["run"], bin_dir, tmp_path, env)
    assert (status == 0) is passes
    args = log.read_text().split()
    assert args[args.index("--base") + 1] == args[args.index("--head") + 1] == "pushed-sha"


@pytest.mark.parametrize(("code", "passes"), [(0, True), (1, True), (2, False), (3, False)])
def test_gitlab_job_posts_then_passes_only_on_success(
    bin_dir: Path, tmp_path: Path, code: int, passes: bool
) -> None:
    job = _gitlab()
    env = {
        "CI_MERGE_REQUEST_DIFF_BASE_SHA": "base-sha",
        "CI_COMMIT_SHA": "head-sha",
        "CI_API_V4_URL": "https://gitlab.example.com/api/v4",
        "CI_PROJECT_ID": "12",
        "CI_MERGE_REQUEST_IID": "7",
        "TIDEGATE_NOTE_TOKEN": "t",
        "FAKE_EXIT": str(code),
        "FAKE_REPORT": "1" if code != 2 else "0",
    }
    status, calls = _run("\n".join(job["script"]), bin_dir, tmp_path, env)
    assert (status == 0) is passes
    if code != 2:
        assert len(calls) == 1
        assert "/projects/12/merge_requests/7/notes" in calls[0]
        assert "body@preview.md" in calls[0]
    else:
        assert calls == []


def test_gitlab_caches_the_directory_tidegate_uses() -> None:
    job = _gitlab()
    directory = job["variables"]["TIDEGATE_CACHE_DIR"]
    assert directory.startswith("$CI_PROJECT_DIR/")
    relative = directory.removeprefix("$CI_PROJECT_DIR/")
    assert job["cache"]["paths"] == [f"{relative}/"]
    assert job["variables"]["GIT_DEPTH"] == "0"


def test_the_default_render_cache_lives_in_the_kept_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TIDEGATE_CACHE_DIR", str(tmp_path / "kept"))
    assert preview.default_cache_dir() == tmp_path / "kept" / "render"
