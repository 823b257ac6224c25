"""`tidegate demo --once` as a real process: every step of the story, from what the servers got.

The demo runs the git server, the GitHub API server, the local control plane, `tidegate serve`
and `tidegate reconcile` itself; `--record` writes what the GitHub API server received (comments,
check runs, commit statuses by SHA, OpenAPI violations) and what the cluster holds at the end.
The first test checks each step against the exact SHAs, then that nothing the demo started is
left: no process, no listening port, no scratch directory.

The others interrupt the demo at each step, signalled the moment it narrates that step: SIGINT
must end it with 130 and SIGTERM with 143 (128 + the signal, as a shell reports it), both after
stopping everything; a SIGKILL, which the demo cannot see, must still leave nothing once its
reaper has acted. The runs of one step go side by side, so the whole set costs about as much as
one run per step, and the step-4 runs (the demo staying up without `--once`) play the full story
first.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devenv import reaper

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
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False  # reaped between the signal and the read
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


def _assert_nothing_left(output: str, *, children: tuple[int, ...] = (2,)) -> None:
    scratch = _scratch(output)
    assert not scratch.exists()
    assert _processes_using(scratch) == []
    assert reaper.marked(scratch) == []  # the children of children carry the marker too
    pids = _pids(output)
    assert len(pids) in children, output  # tidegate serve and tidegate reconcile
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

    # 4. where to look, the summary, then everything stopped.
    assert f"commit statuses on {shas['main'][:12]}, one per Kustomization" in output
    assert f"commit statuses on {shas['merge'][:12]}, the applied state against" in output
    assert "      | ### Tidegate preview" in output  # the comment as a reviewer reads it
    assert "<!--" not in output  # without the markers that keep it sticky
    assert "get ks -A" in output
    assert "admin.kubeconfig" in output
    assert (
        f"==> done: check tidegate/preview failure on {shas['head'][:12]}, then success on "
        f"{shas['waived'][:12]}; 1 sticky comment; merge {shas['merge'][:12]} applied as "
        "previewed by 3 of 3 Kustomizations; redis pruned"
    ) in output
    _assert_nothing_left(output)


# Where each step begins, as the demo narrates it. Step 1's SIGTERM arrives while `tidegate
# reconcile` is being started (the line before it names `tidegate serve`): a start in progress.
STEPS: dict[int, dict[signal.Signals, str]] = {
    1: {signal.SIGINT: "==> 1. bootstrap", signal.SIGTERM: "    tidegate serve "},
    2: {
        signal.SIGINT: "==> 2. pull request",
        signal.SIGTERM: "==> 2b. second push",  # a preview is being rendered
        signal.SIGKILL: "==> 2. pull request",
    },
    3: {signal.SIGINT: "==> 3. merge", signal.SIGTERM: "==> 3. merge"},
    4: {signal.SIGINT: "==> everything keeps running", signal.SIGTERM: "==> everything keeps"},
}
# What the demo must not have reached when it was stopped at a step.
NEXT = {1: "==> 2. ", 2: "==> 3. ", 3: "==> 4. ", 4: "==> done"}
# How long the reaper may take to act after a SIGKILL before the test looks (not a threshold
# on the demo: the assertions below run either way).
_REAPED_WITHIN = 60.0


class _Interrupted:
    """One demo run, signalled by a reader thread the moment a marker line appears.

    `look`, when given, runs first with the output so far: what a reader of it would try.
    """

    def __init__(
        self, signum: signal.Signals, marker: str, look: Callable[[str], Any] | None = None
    ) -> None:
        self.signum = signum
        self.marker = marker
        self.look = look
        self.looked: Any = None
        self.demo = _demo()
        self.lines: list[str] = []
        self.signalled = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.demo.stdout is not None
        for line in self.demo.stdout:
            self.lines.append(line)
            if not self.signalled and line.startswith(self.marker):
                try:
                    if self.look is not None:
                        self.looked = self.look("".join(self.lines))
                finally:
                    self.demo.send_signal(self.signum)
                self.signalled = True

    def finish(self) -> str:
        """Wait for the demo and its output; return the output."""
        self.demo.wait(timeout=840)
        self._reader.join(timeout=60)
        return "".join(self.lines)


@pytest.mark.parametrize("step", sorted(STEPS))
def test_an_interrupted_demo_stops_everything_at_every_step(step: int) -> None:
    runs = [
        _Interrupted(signum, marker, _look if (step, signum) == (4, signal.SIGINT) else None)
        for signum, marker in STEPS[step].items()
    ]
    for run in runs:
        output = run.finish()
        assert run.signalled, output
        assert NEXT[step] not in output  # it stopped at that step
        name = run.signum.name
        if run.signum == signal.SIGKILL:
            assert run.demo.returncode == -signal.SIGKILL, output
            _wait_for_the_reaper(_scratch(output))
        else:
            assert run.demo.returncode == 128 + run.signum, (name, output)
            assert f"==> interrupted ({name}): stopping everything" in output
            assert "==> stopped; scratch directory removed" in output
        if step == 4 and run.signum == signal.SIGINT:
            # The whole story played before the demo stayed up, and where it says to look, the
            # comment, the check, the statuses and the Kustomizations are.
            looked = run.looked
            assert looked is not None, output
            [comment] = looked["comment"]
            assert "Policy gate passed" in comment["body"]
            [check] = looked["check"]["check_runs"]
            assert (check["name"], check["conclusion"]) == ("tidegate/preview", "success")
            previewed = {
                status["context"].split("/")[1]
                for status in looked["statuses"]
                if status["state"] == "success"
                and status["description"].endswith("applied as previewed")
            }
            assert previewed == set(CONTEXTS), looked["statuses"]
            assert re.search(r"flux-system\s+apps\s+\S+\s+True", looked["ks"]), looked["ks"]
        # Step 1's SIGTERM lands before tidegate reconcile printed its line, or just after.
        starting = step == 1 and run.signum == signal.SIGTERM
        _assert_nothing_left(output, children=(1, 2) if starting else (2,))


def _look(output: str) -> dict[str, Any]:
    """Follow the demo's "where to look" lines: the API calls and the kubectl command."""
    looked: dict[str, Any] = {}
    for what in ("comment", "check", "statuses"):
        match = re.search(rf"{what}: +curl -sH @(\S+) (\S+)", output)
        assert match, output
        header, _, token = Path(match.group(1)).read_text().strip().partition(": ")
        request = urllib.request.Request(match.group(2), headers={header: token})
        with urllib.request.urlopen(request, timeout=30) as response:
            looked[what] = json.loads(response.read())
    match = re.search(r"^ +(\S+/kubectl --kubeconfig \S+ get ks -A)$", output, re.MULTILINE)
    assert match, output
    looked["ks"] = subprocess.run(
        match.group(1).split(), capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return looked


def _wait_for_the_reaper(scratch: Path) -> None:
    deadline = time.monotonic() + _REAPED_WITHIN
    while time.monotonic() < deadline and (scratch.exists() or reaper.marked(scratch)):
        time.sleep(0.2)
