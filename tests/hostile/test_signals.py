"""SIGTERM and SIGINT during a preview: the tools stop and no work directory is left behind.

The preview runs as a real `tidegate` process on a real repository; kustomize is replaced by a
stand-in that records that it started and then waits, so the signal arrives while a render is in
progress (the cleanup under test is ours, not kustomize's).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.host.workspace import PREFIX
from tests.preview.gitrepo import commit, configmap, flux_cluster, kustomization, new_repo

_WAIT = 120.0  # generous: the machine may be busy; the test never asserts on timing


def _stand_in(path: Path, marker: Path) -> Path:
    path.write_text(
        "#!/bin/sh\n"
        f'echo "$$ $PWD" > "{marker}.tmp" && mv "{marker}.tmp" "{marker}"\n'
        "exec sleep 600\n"
    )
    path.chmod(0o755)
    return path


def _wait_for(marker: Path, proc: subprocess.Popen[str]) -> None:
    end = time.monotonic() + _WAIT
    while not marker.exists():
        if proc.poll() is not None or time.monotonic() > end:
            _, err = proc.communicate(timeout=_WAIT)
            pytest.fail(f"the render never started: {err}")
        time.sleep(0.1)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_the_tools_and_removes_every_work_directory(
    tmp_path: Path, helm_bin: Path, signum: int, code: int
) -> None:
    repo, base = new_repo(
        tmp_path / "repo",
        {
            **flux_cluster(),
            "clusters/production/apps.yaml": kustomization("apps", "./apps"),
            "apps/config.yaml": configmap("settings", "default", mode="fast"),
        },
    )
    head = commit(repo, {"apps/config.yaml": configmap("settings", "default", mode="slow")}, "x")
    temp = tmp_path / "tmp"
    temp.mkdir()
    stale = temp / f"{PREFIX}left-by-a-killed-run"
    stale.mkdir()
    (stale / ".lock").write_text("")
    (stale / "copy.yaml").write_text("private")
    marker = tmp_path / "started"
    kustomize = _stand_in(tmp_path / "kustomize", marker)

    argv = [sys.executable, "-m", "cli", "preview", "--repo", str(repo), "--base", base]
    argv += ["--head", head, "--cache-dir", str(tmp_path / "cache")]
    # The stand-in writes its marker outside the render's jail; the sandbox is not under test.
    argv += ["--kustomize", str(kustomize), "--helm", str(helm_bin), "--sandbox", "off"]
    proc = subprocess.Popen(
        argv,
        env={**os.environ, "TMPDIR": str(temp)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(marker, proc)
        tool_pid = int(marker.read_text().split()[0])
        assert not stale.exists()  # removed at start, before any render
        assert [p.name[: len(PREFIX)] for p in temp.iterdir()] == [PREFIX]
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=_WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    assert proc.returncode == code
    assert "Traceback" not in err
    assert ("terminated" if signum == signal.SIGTERM else "interrupted") in err
    assert list(temp.iterdir()) == []
    # The tool was killed, not left running (a zombie of ours would show as gone once reaped).
    assert _state(tool_pid) in ("Z", "gone")


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return "gone"
