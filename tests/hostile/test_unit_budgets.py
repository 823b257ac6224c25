"""Budgets and guards that need no tools: names, the JSON report size, known Secret values,
work directories and the subprocess seam's output, memory and signal handling."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from core import names
from core.budgets import Deadline
from core.errors import BudgetError, CommandError
from core.host import workspace
from core.host.command import Limits, run
from core.report import jsonout
from core.secrets import KnownValues, Masker, values_in
from tests.report.samples import sample_preview

# --- names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("group", "kind", "name", "problem"),
    [
        ("", "ConfigMap", "a" * 254, "254 characters long; at most 253"),
        ("", "ConfigMap", "Upper", "DNS-1123 subdomain"),
        ("", "ConfigMap", "tidegate:masked:abc", "DNS-1123 subdomain"),
        ("", "Namespace", "a" * 64, "64 characters long; at most 63"),
        ("", "Namespace", "a.b", "DNS-1123 label"),
        ("", "Service", "1abc", "DNS-1035 label"),
        ("rbac.authorization.k8s.io", "ClusterRole", "a/b", "may not contain '/' or '%'"),
        ("example.com", "Widget", "-x", "DNS-1123 subdomain"),
        ("", "ConfigMap", "", "metadata.name is empty"),
    ],
)
def test_names_the_api_server_refuses(group: str, kind: str, name: str, problem: str) -> None:
    found = names.name_problem(group, kind, name)
    assert found is not None
    assert problem in found


@pytest.mark.parametrize(
    ("group", "kind", "name"),
    [
        ("", "ConfigMap", "a" * 253),
        ("", "ConfigMap", "web.example-1"),
        ("", "Namespace", "a" * 63),
        ("", "Service", "api"),
        ("rbac.authorization.k8s.io", "ClusterRole", "system:controller:job"),
        ("apps", "Deployment", "api"),
    ],
)
def test_names_the_api_server_accepts(group: str, kind: str, name: str) -> None:
    assert names.name_problem(group, kind, name) is None


def test_a_long_bad_name_is_quoted_short() -> None:
    problem = names.name_problem("", "ConfigMap", "x" * 5000)
    assert problem is not None
    assert len(problem) < 200


def test_namespaces_are_labels() -> None:
    assert names.namespace_problem("") is None
    assert names.namespace_problem("web") is None
    assert "DNS-1123 label" in (names.namespace_problem("Web") or "")


# --- the JSON report's budget --------------------------------------------------------------------


def test_a_report_within_budget_is_untouched() -> None:
    text = jsonout.dumps(sample_preview())
    assert "truncated" not in json.loads(text)


def test_a_report_over_budget_drops_diffs_and_says_so() -> None:
    full = jsonout.dumps(sample_preview())
    limit = len(full.encode()) - 50
    text = jsonout.dumps(sample_preview(), max_bytes=limit)
    data = json.loads(text)
    assert len(text.encode()) <= limit
    assert data["truncated"]["limitBytes"] == limit
    assert data["truncated"]["diffsOmitted"] >= 1
    assert data["summary"] == json.loads(full)["summary"]


def test_a_report_that_cannot_fit_fails_naming_the_flag() -> None:
    with pytest.raises(BudgetError) as caught:
        jsonout.dumps(sample_preview(), max_bytes=300)
    assert "--max-report-bytes" in str(caught.value)


# --- known Secret values -------------------------------------------------------------------------


def test_known_values_are_scrubbed_as_text_base64_and_lines() -> None:
    known = KnownValues()
    known.add(b"hunter2-canary\nsecond-line-canary")
    encoded = base64.b64encode(b"hunter2-canary\nsecond-line-canary").decode()
    text = f"error: value hunter2-canary found; b64 {encoded}; line second-line-canary"
    scrubbed = known.scrub(text)
    assert "canary" not in scrubbed
    assert "***" in scrubbed


def test_short_values_are_not_scrubbed() -> None:
    known = KnownValues()
    known.add(b"ab")
    assert known.scrub("ab cd") == "ab cd"


def test_the_masker_remembers_what_it_masks() -> None:
    known = KnownValues()
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s"},
        "data": {"a": base64.b64encode(b"from-data-canary").decode()},
        "stringData": {"b": "from-string-canary"},
    }
    Masker(known=known).mask_object(secret)
    assert "canary" not in known.scrub("from-data-canary from-string-canary")


def test_secret_values_are_found_in_documents() -> None:
    docs = [
        {"kind": "Secret", "stringData": {"k": "v-canary"}},
        {"secretGenerator": [{"name": "g", "literals": ["key=literal-canary"]}]},
        {"kind": "ConfigMap", "data": {"k": "not-secret"}},
    ]
    assert values_in(docs) == [b"v-canary", b"literal-canary"]


# --- the deadline --------------------------------------------------------------------------------


def test_a_cancelled_deadline_has_expired_and_names_its_flag() -> None:
    deadline = Deadline(600)
    assert not deadline.expired
    assert deadline.bound(120) == 120
    deadline.cancel()
    assert deadline.expired
    with pytest.raises(BudgetError, match="--timeout"):
        deadline.check()
    assert deadline.bound(120) < 1


# --- work directories ----------------------------------------------------------------------------


def test_the_workspace_is_removed_on_exit(tmp_path: Path) -> None:
    ws = workspace.Workspace(tmp_path)
    with ws as root:
        (root / "unit").mkdir()
        (root / "unit" / "file").write_text("copy")
    assert list(tmp_path.iterdir()) == []


def test_stale_workspaces_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    stale = tmp_path / f"{workspace.PREFIX}dead"
    stale.mkdir()
    (stale / ".lock").write_text("")
    live = tmp_path / f"{workspace.PREFIX}live"
    live.mkdir()
    holder = (live / ".lock").open("w")
    other = tmp_path / "unrelated"
    other.mkdir()
    try:
        # Another process holds the live lock, as a running preview would.
        locker = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import fcntl, sys; f = open(sys.argv[1]); fcntl.flock(f, fcntl.LOCK_EX); "
                "print('locked', flush=True); sys.stdin.read()",
                str(live / ".lock"),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert locker.stdout is not None
        assert locker.stdout.readline().strip() == "locked"
        removed = workspace.remove_stale(tmp_path)
        locker.communicate("")
    finally:
        holder.close()
    assert removed == [stale]
    assert live.exists()
    assert other.exists()
    # Once its process is gone, the lock is free and the directory is stale.
    assert workspace.remove_stale(tmp_path) == [live]


def _dead_workspace(parent: Path, name: str) -> Path:
    """A work directory whose preview was killed: its lock file, held by nobody."""
    directory = parent / f"{workspace.PREFIX}{name}"
    directory.mkdir()
    (directory / ".lock").write_text("")
    return directory


def test_a_process_removes_stale_workspaces_at_its_first_preview_then_once_a_minute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(workspace, "_LOOKED", {})
    first = _dead_workspace(tmp_path, "first")
    with workspace.Workspace(tmp_path, clock=lambda: clock[0]):
        pass
    second = _dead_workspace(tmp_path, "second")
    clock[0] += 59
    with workspace.Workspace(tmp_path, clock=lambda: clock[0]):
        pass
    kept_within_the_minute = second.exists()
    clock[0] += 1
    with workspace.Workspace(tmp_path, clock=lambda: clock[0]):
        pass

    assert not first.exists()
    assert kept_within_the_minute
    assert not second.exists()


def test_a_directory_handed_over_is_removed_in_the_background(tmp_path: Path) -> None:
    handed = [tmp_path / f"unit-{n}" for n in range(3)]
    for directory in handed:
        (directory / "repo" / "apps").mkdir(parents=True)
        (directory / "repo" / "apps" / "copy.yaml").write_text("private")

    for directory in handed:
        workspace.remove_later(directory)
    workspace.removed_later()

    assert list(tmp_path.iterdir()) == []


def test_a_forked_child_removes_what_it_hands_over(tmp_path: Path) -> None:
    workspace.remove_later(tmp_path / "started-the-parent-s-remover")
    workspace.removed_later()
    handed = tmp_path / "child-unit"
    (handed / "repo").mkdir(parents=True)

    pid = os.fork()
    if pid == 0:  # the child: its own remover, or its removals would wait forever
        code = 1
        try:
            workspace.remove_later(handed)
            waiter = threading.Thread(target=workspace.removed_later, daemon=True)
            waiter.start()
            waiter.join(60)
            code = 0 if not waiter.is_alive() and not handed.exists() else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)

    assert os.waitstatus_to_exitcode(status) == 0


def test_a_workspace_holds_its_lock(tmp_path: Path) -> None:
    with workspace.Workspace(tmp_path) as root, (root / ".lock").open() as probe:
        with pytest.raises(BlockingIOError):
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert workspace.remove_stale(tmp_path) == []


# --- the subprocess seam -------------------------------------------------------------------------


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_output_over_budget_kills_the_tool() -> None:
    limits = Limits(max_output=1 << 20)
    code = "import sys\nwhile True: sys.stdout.write('x' * 65536)"
    with pytest.raises(BudgetError) as caught:
        run(_python(code), limits=limits)
    assert "printed more than 1 MiB of output" in str(caught.value)
    assert "--max-tool-output" in str(caught.value)


def test_output_within_budget_is_returned_whole() -> None:
    out = run(_python("print('y' * 100000)"), limits=Limits(max_output=1 << 20))
    assert out == b"y" * 100000 + b"\n"


def test_stdin_is_passed() -> None:
    assert run(_python("import sys; print(sys.stdin.read()[::-1])"), stdin=b"abc") == b"cba\n"


def test_a_tool_out_of_memory_gets_a_short_message() -> None:
    # Go prints this line and then a goroutine dump for every goroutine.
    code = (
        "import sys\nsys.stderr.write('fatal error: runtime: out of memory\\n\\n'"
        " + 'goroutine 1 [running]:\\n' * 5000)\nsys.exit(2)"
    )
    with pytest.raises(CommandError) as caught:
        run(_python(code), limits=Limits(memory=3 << 30, flags=True))
    message = str(caught.value)
    assert "ran out of memory (limit 3 GiB" in message
    assert "--tool-memory" in message
    assert "goroutine" not in message


def test_a_goroutine_dump_is_cut_from_the_message() -> None:
    code = (
        "import sys\nsys.stderr.write('panic: boom\\n\\ngoroutine 1 [running]:\\nmain.f()\\n')\n"
        "sys.exit(2)"
    )
    with pytest.raises(CommandError) as caught:
        run(_python(code))
    assert "panic: boom" in str(caught.value)
    assert "goroutine" not in str(caught.value)


def test_a_tool_killed_by_a_signal_says_which() -> None:
    with pytest.raises(CommandError, match="was killed by signal SIGKILL"):
        run(_python("import os, signal; os.kill(os.getpid(), signal.SIGKILL)"))


def test_a_slow_tool_times_out_naming_the_flag() -> None:
    with pytest.raises(CommandError, match="--tool-timeout"):
        run(_python("import time; time.sleep(60)"), limits=Limits(timeout=0.5, flags=True))


def test_stderr_keeps_only_its_end() -> None:
    code = "import sys\nsys.stderr.write('noise\\n' * 2_000_000 + 'the real error')\nsys.exit(1)"
    with pytest.raises(CommandError) as caught:
        run(_python(code))
    assert str(caught.value).endswith("the real error")
    assert len(str(caught.value)) < 5000
    assert os.environ  # the caller's environment is untouched
