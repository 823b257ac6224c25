"""`tidegate demo --once` as a real process: every step of the story, from what the servers got.

The demo runs the git server, the GitHub API server, the local control plane, `tidegate serve`
and `tidegate reconcile` itself; `--record` writes what the GitHub API server received (comments,
check runs, commit statuses by SHA, OpenAPI violations) and what the cluster holds at the end.
The test checks each step against the exact SHAs, then that nothing the demo started is left:
no process, no listening port, no scratch directory. A second test interrupts the demo with
SIGINT while its servers run and checks the same.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
CONTEXTS = ("apps", "config", "flux-system")


def _demo(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cli", "demo", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _states(record: dict[str, Any], sha: str) -> dict[str, list[tuple[str, str]]]:
    by_context: dict[str, list[tuple[str, str]]] = {}
    for status in record["statuses"].get(sha, []):
        name = status["context"].split("/")[1]
        by_context.setdefault(name, []).append((status["state"], status["description"]))
    return by_context


def _scratch(output: str) -> Path:
    match = re.search(r"==> scratch directory (\S+)", output)
    assert match, output
    return Path(match.group(1))


def _ports(output: str) -> set[int]:
    return {int(p) for p in re.findall(r"https?://127\.0\.0\.1:(\d+)", output)}


def _pids(output: str) -> set[int]:
    return {int(p) for p in re.findall(r"\(pid (\d+)\)", output)}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone in all but name; only the demo (already reaped) could reap it.
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _processes_using(path: Path) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(path) in cmdline:
            found.append(f"{entry.name}: {cmdline}")
    return found


def _assert_nothing_left(output: str) -> None:
    scratch = _scratch(output)
    assert not scratch.exists()
    assert _processes_using(scratch) == []
    pids = _pids(output)
    assert len(pids) == 2, output  # tidegate serve and tidegate reconcile
    assert [pid for pid in pids if _alive(pid)] == []
    ports = _ports(output)
    assert len(ports) >= 4, output  # git, GitHub API, apiserver, serve
    assert [port for port in ports if _listening(port)] == []


def test_the_demo_plays_every_step_and_leaves_nothing_behind(tmp_path: Path) -> None:
    record_file = tmp_path / "record.json"
    demo = _demo("--once", "--record", str(record_file))
    output, _ = demo.communicate(timeout=840)
    assert demo.returncode == 0, output
    record = json.loads(record_file.read_text())
    shas = record["shas"]
    assert record["violations"] == []

    # 1. bootstrap: every Kustomization's status on main went pending, then success.
    main = _states(record, shas["main"])
    assert sorted(main) == list(CONTEXTS)
    for states in main.values():
        assert [s for s, _ in states] == ["pending", "success"]

    # 2. the pull request: one sticky comment, the check failing on the first push (the policy)
    # and passing on the waived second push.
    checks = {run["head_sha"]: run for run in record["check_runs"]}
    assert set(checks) == {shas["head"], shas["waived"]}
    blocked, waived = checks[shas["head"]], checks[shas["waived"]]
    assert (blocked["name"], blocked["conclusion"]) == ("tidegate/preview", "failure")
    assert "replica-ceiling" in blocked["output"]["summary"]
    assert (waived["name"], waived["conclusion"]) == ("tidegate/preview", "success")
    [comment] = record["comments"]
    assert f"Merging `{shas['waived'][:12]}`" in comment
    assert "Policy gate passed" in comment
    assert "replica-ceiling" in comment  # the waived finding stays visible
    assert "Deployment/demo/redis" in comment
    assert "GP003" in comment  # the move

    # 3. the merge: applied, redis pruned as previewed, statuses say so.
    merged = _states(record, shas["merge"])
    assert sorted(merged) == list(CONTEXTS)
    for states in merged.values():
        assert states[0][0] == "pending"
        assert states[-1][0] == "success"
        assert states[-1][1].endswith("applied as previewed")
    assert set(record["kustomizations"].values()) == {f"main@sha1:{shas['merge']}"}
    assert record["redis"] is False
    assert record["podinfo_replicas"] == 4
    assert record["settings_owner"] == "apps"
    # Nothing posted on the pull request's commits by the reconciler: they were never applied.
    assert shas["head"] not in record["statuses"]

    # 4. where to look, then everything stopped.
    assert "get ks -A" in output
    assert "admin.kubeconfig" in output
    _assert_nothing_left(output)


def test_sigint_while_the_servers_run_stops_everything() -> None:
    demo = _demo("--once")
    assert demo.stdout is not None
    lines = []
    for line in demo.stdout:
        lines.append(line)
        if "tidegate reconcile" in line:
            break
    demo.send_signal(signal.SIGINT)
    rest, _ = demo.communicate(timeout=120)
    output = "".join(lines) + rest
    assert demo.returncode == 130, output
    assert "interrupted: stopping everything" in output
    _assert_nothing_left(output)
