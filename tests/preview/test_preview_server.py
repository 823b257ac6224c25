"""The warm preview server for the CLI: same output as in-process, used only when it is safe.

Real processes throughout: `tidegate preview-server start` in the background, `tidegate preview`
as a client on the real socket, the pinned kustomize and helm, the example repository. Each test
gets its own cache directory (so its own server) and stops the server at the end. Whether a
preview went through the server is read from the server's own count, so a client that silently
ran in-process fails the test.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli import demo, preview_client, preview_daemon, preview_wire
from devenv import toolchain

ROOT = Path(__file__).resolve().parents[2]
WAIT = 120.0


class Fleet:
    """The example repository, a private cache directory and `tidegate` run in processes."""

    def __init__(self, tmp: Path, kustomize: Path, helm: Path) -> None:
        self.tmp = tmp
        self.repo = tmp / "repo"
        demo.build_example_repo(self.repo)
        self.tools = ["--kustomize", str(kustomize), "--helm", str(helm)]
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TIDEGATE_")}
        self.env.update(TIDEGATE_CACHE_DIR=str(tmp / "cache"), PYTHONPATH=str(ROOT))

    def tidegate(
        self, *argv: str, env: dict[str, str] | None = None, root: Path = ROOT
    ) -> subprocess.CompletedProcess[bytes]:
        environment = {**self.env, "PYTHONPATH": str(root), **(env or {})}
        return subprocess.run(
            [sys.executable, "-m", "cli", *argv],
            cwd=self.repo,
            env=environment,
            capture_output=True,
            timeout=WAIT,
            check=False,
        )

    def preview(self, *argv: str, env: dict[str, str] | None = None) -> list[str]:
        return ["preview", *argv, *self.tools]

    def served(self) -> int:
        done = self.tidegate("preview-server", "status")
        match = re.search(rb"(\d+) previews served", done.stdout)
        assert match, done.stdout + done.stderr
        return int(match.group(1))

    def server_pid(self) -> int:
        done = self.tidegate("preview-server", "status")
        match = re.search(rb"pid (\d+)", done.stdout)
        assert match, done.stdout + done.stderr
        return int(match.group(1))


@pytest.fixture
def fleet(tmp_path: Path, kustomize_bin: Path, helm_bin: Path) -> Iterator[Fleet]:
    fleet = Fleet(tmp_path, kustomize_bin, helm_bin)
    yield fleet
    fleet.tidegate("preview-server", "stop")
    # A server that would not stop (a busy or broken one) must not outlive the test: every
    # server this test started wrote its pid first thing in its log.
    log = tmp_path / "cache" / "preview-server" / "log"
    if log.exists():
        for pid in re.findall(r"preview server (\d+) serving", log.read_text()):
            _kill(int(pid))
    sleeper = tmp_path / "sleeper"
    if sleeper.exists():  # the slow kustomize's wait, orphaned once its shell is killed
        _kill(int(sleeper.read_text()))


@pytest.fixture
def server(fleet: Fleet) -> Fleet:
    started = fleet.tidegate("preview-server", "start", "--idle-timeout", "300")
    assert started.returncode == 0, started.stderr
    return fleet


CASES = {
    "change": ("--base", "main", "--head", "pull-request", "--no-policies"),
    "gate": ("--base", "main", "--head", "pull-request", "--format", "json"),
    "no change": ("--base", "main", "--head", "main"),
    "bad input": ("--base", "main", "--head", "no-such-branch"),
    "usage error": ("--format", "xml"),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_a_preview_through_the_server_is_byte_identical(server: Fleet, case: str) -> None:
    argv = server.preview(*CASES[case])
    alone = server.tidegate(*argv, env={preview_client.DISABLE_ENV: "off"})
    before = server.served()

    through = server.tidegate(*argv)

    assert server.served() == before + 1
    assert (through.returncode, through.stdout, through.stderr) == (
        alone.returncode,
        alone.stdout,
        alone.stderr,
    )
    assert alone.returncode in (0, 1, 2, 3)
    assert alone.stdout or alone.stderr


def test_the_exit_codes_cover_change_no_change_and_error(server: Fleet) -> None:
    codes = {
        case: server.tidegate(*server.preview(*argv)).returncode for case, argv in CASES.items()
    }

    assert codes == {"change": 1, "gate": 3, "no change": 0, "bad input": 2, "usage error": 2}


def test_files_and_environment_are_the_clients(server: Fleet) -> None:
    work = server.tmp / "work"
    work.mkdir()
    argv = server.preview(
        "--repo", str(server.repo), "--base", "main", "--head", "pull-request",
        "--output", "report.md", "--sarif", "findings.sarif",
    )  # fmt: skip

    done = subprocess.run(
        [sys.executable, "-m", "cli", *argv],
        cwd=work,
        env={**server.env, "TIDEGATE_CACHE_MAX_BYTES": "64M"},
        capture_output=True,
        timeout=WAIT,
        check=False,
    )
    bad_env = server.tidegate(*argv, env={"TIDEGATE_CACHE_MAX_BYTES": "lots"})
    # The previous request's environment is gone: this one sees its own, without the variable.
    again = subprocess.run(
        [sys.executable, "-m", "cli", *argv],
        cwd=work,
        env=server.env,
        capture_output=True,
        timeout=WAIT,
        check=False,
    )

    assert done.returncode == 3, done.stderr
    assert "## " in (work / "report.md").read_text()
    assert json.loads((work / "findings.sarif").read_text())["version"] == "2.1.0"
    assert (bad_env.returncode, bad_env.stdout) == (2, b"")
    assert b"$TIDEGATE_CACHE_MAX_BYTES" in bad_env.stderr
    assert again.returncode == 3, again.stderr
    assert server.served() == 3


def test_the_switches_keep_the_preview_in_process(server: Fleet) -> None:
    argv = server.preview(*CASES["change"])

    server.tidegate(*argv, env={preview_client.DISABLE_ENV: "off"})
    server.tidegate(*argv, "--no-server")

    assert server.served() == 0


def test_the_same_interpreter_under_another_name_uses_the_server(server: Fleet) -> None:
    # A venv's `python` and `python3` (the console script's shebang) are one interpreter of one
    # environment: the same code, whichever name started the server or the client.
    here = Path(sys.executable)
    other = here.parent / ("python3" if here.name == "python" else "python")
    assert other.resolve() == here.resolve()

    done = subprocess.run(
        [str(other), "-m", "cli", *server.preview(*CASES["no change"])],
        cwd=server.repo,
        env=server.env,
        capture_output=True,
        timeout=WAIT,
        check=False,
    )

    assert (done.returncode, done.stderr) == (0, b"")
    assert server.served() == 1


def test_a_server_of_other_code_is_not_used(server: Fleet) -> None:
    other = server.tmp / "other-checkout"
    for package in ("cli", "core", "policies", "devenv", "tools"):
        shutil.copytree(
            ROOT / package, other / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    argv = server.preview(*CASES["change"])
    alone = server.tidegate(*argv, env={preview_client.DISABLE_ENV: "off"})

    done = server.tidegate(*argv, root=other)

    assert server.served() == 0
    assert done.returncode == alone.returncode == 1
    assert done.stdout == alone.stdout
    assert done.stderr == (
        b"tidegate: the running preview server runs other code; previewing in this process\n"
        + alone.stderr
    )


def test_a_server_of_another_cache_directory_is_not_used(server: Fleet) -> None:
    argv = server.preview(*CASES["change"], "--cache-dir", str(server.tmp / "elsewhere"))

    done = server.tidegate(*argv)

    assert server.served() == 0
    assert done.returncode == 1
    assert done.stderr.startswith(b"tidegate: the preview server serves another cache directory")
    assert (server.tmp / "elsewhere").is_dir()


def test_a_server_started_with_another_go_is_not_used(server: Fleet) -> None:
    # The pinned tools' directory is named after the Go that builds them.
    bin_dir = server.tmp / "other-go"
    bin_dir.mkdir()
    (bin_dir / "go").write_text("#!/bin/sh\necho go0.0\n")
    (bin_dir / "go").chmod(0o755)
    path = f"{bin_dir}{os.pathsep}{server.env['PATH']}"

    done = server.tidegate(*server.preview(*CASES["change"]), env={"PATH": path})

    assert server.served() == 0
    assert done.returncode == 1
    assert done.stderr.startswith(b"tidegate: the preview server was started with another Go")


def test_the_socket_is_private_and_the_peer_must_be_this_user(server: Fleet) -> None:
    directory = server.tmp / "cache" / "preview-server"

    assert directory.stat().st_mode & 0o777 == 0o700
    assert (directory / "socket").stat().st_mode & 0o777 == 0o600
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(str(directory / "socket"))
        assert preview_daemon.peer_allowed(conn)
        assert not preview_daemon.peer_allowed(conn, uid=os.getuid() + 1)


def test_a_connection_from_another_uid_gets_no_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    # The server's check, on a real socket pair, with the server's uid seen as another one.
    monkeypatch.setattr(os, "getuid", lambda: os.geteuid() + 1)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server = preview_daemon.PreviewServer(
        listener, -1, cache_dir=Path("/nonexistent"), idle_timeout=1, recycle_after=1
    )
    try:
        server._connection(theirs)
        theirs.close()
        assert ours.recv(100) == b""  # closed without a hello
    finally:
        ours.close()
        listener.close()


def test_an_idle_server_exits_and_removes_its_socket(fleet: Fleet) -> None:
    # A few seconds, so the server cannot idle out before `start` has asked it for its pid; the
    # pid comes from that answer, since a later `status` may find the server already gone.
    started = fleet.tidegate("preview-server", "start", "--idle-timeout", "5")
    assert started.returncode == 0, started.stderr
    match = re.search(rb"started \(pid (\d+)\)", started.stdout)
    assert match, started.stdout + started.stderr
    pid = int(match.group(1))

    _wait_gone(pid)

    assert not (fleet.tmp / "cache" / "preview-server" / "socket").exists()
    assert fleet.tidegate("preview-server", "status").returncode == 1


def test_stop_ends_the_server(server: Fleet) -> None:
    pid = server.server_pid()

    done = server.tidegate("preview-server", "stop")

    assert done.returncode == 0
    _wait_gone(pid)
    assert not (server.tmp / "cache" / "preview-server" / "socket").exists()


def test_a_server_replaces_itself_after_its_quota_of_previews(fleet: Fleet) -> None:
    started = fleet.tidegate("preview-server", "start", "--recycle-after", "2")
    assert started.returncode == 0, started.stderr
    argv = fleet.preview(*CASES["no change"])

    fleet.tidegate(*argv)
    fleet.tidegate(*argv)
    after_quota = fleet.served()
    third = fleet.tidegate(*argv)

    # A fresh process (the same pid: it execs itself on the same socket) that starts counting
    # again, and still answers.
    assert after_quota == 0
    assert (third.returncode, third.stderr) == (0, b"")
    assert fleet.served() == 1
    log = (fleet.tmp / "cache" / "preview-server" / "log").read_text()
    assert "recycling after 2 previews" in log


def _slow_kustomize(fleet: Fleet, kustomize: Path) -> tuple[list[str], Path]:
    """A kustomize that says it started, then waits: a request still running when we act."""
    marker = fleet.tmp / "started"
    script = fleet.tmp / "slow-kustomize"
    sleeper = fleet.tmp / "sleeper"
    script.write_text(
        # Only the first build waits (mkdir is atomic: builds run in parallel); the others and
        # the first, once its wait ends, are the real kustomize.
        f"#!/bin/sh\nif mkdir {fleet.tmp}/slow 2>/dev/null; then\n"
        f"  sleep 60 </dev/null >/dev/null 2>&1 &\n  echo $! > {sleeper}\n"
        f"  echo $$ > {marker}.tmp && mv {marker}.tmp {marker}\n  wait\nfi\n"
        f'exec {kustomize} "$@"\n'
    )
    script.chmod(0o755)
    argv = ["preview", *CASES["change"], "--sandbox", "off", "--cache-dir",
            str(fleet.tmp / "cache" / "render"), "--kustomize", str(script),
            "--helm", fleet.tools[3]]  # fmt: skip
    return argv, marker


def test_ctrl_c_abandons_the_request_and_the_server_survives(
    server: Fleet, kustomize_bin: Path
) -> None:
    argv, marker = _slow_kustomize(server, kustomize_bin)
    client = subprocess.Popen(
        [sys.executable, "-m", "cli", *argv],
        cwd=server.repo,
        env=server.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _wait_for(marker)

    client.send_signal(signal.SIGINT)
    out, err = client.communicate(timeout=WAIT)

    assert (client.returncode, out) == (130, b"")
    assert err.endswith(b"render only trusted content\ntidegate: interrupted\n")
    assert server.served() == 1  # the abandoned request ended, and the server answers
    assert not _running(int(marker.read_text()))  # its kustomize was stopped, not waited for
    after = server.tidegate(*server.preview(*CASES["no change"]))
    assert after.returncode == 0
    assert server.served() == 2


def test_requests_run_one_at_a_time(server: Fleet, kustomize_bin: Path) -> None:
    argv, marker = _slow_kustomize(server, kustomize_bin)
    first = subprocess.Popen(
        [sys.executable, "-m", "cli", *argv],
        cwd=server.repo,
        env=server.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _wait_for(marker)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as second:
        second.connect(str(server.tmp / "cache" / "preview-server" / "socket"))
        second.settimeout(2)
        # While the first preview runs, the next connection is not even greeted.
        with pytest.raises(TimeoutError):
            second.recv(1)

        _kill(int((server.tmp / "sleeper").read_text()))  # let the first preview finish
        out, _ = first.communicate(timeout=WAIT)
        second.settimeout(WAIT)
        hello = preview_wire.read(second.recv)

    assert first.returncode == 1
    assert b"### Tidegate preview" in out
    assert hello["identity"] == preview_client.identity()


def test_a_server_killed_mid_request_is_reported_once(server: Fleet, kustomize_bin: Path) -> None:
    argv, marker = _slow_kustomize(server, kustomize_bin)
    pid = server.server_pid()
    client = subprocess.Popen(
        [sys.executable, "-m", "cli", *argv],
        cwd=server.repo,
        env=server.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _wait_for(marker)

    os.kill(pid, signal.SIGKILL)
    out, err = client.communicate(timeout=WAIT)

    assert client.returncode == 2
    assert out == b""
    assert err.count(b"tidegate: error:") == 1
    assert b"the preview server stopped before the preview ended" in err
    # The dead server's socket is left behind; the next preview runs in-process.
    again = server.tidegate(*server.preview(*CASES["no change"]))
    assert (again.returncode, again.stderr) == (0, b"")


PROBE = """
import sys
from cli import main
code = main.main(sys.argv[1:])
heavy = ("cli.preview", "core.render", "core.preview", "core.repo", "yaml", "policies")
# Not the preview's, but a large part of the client's own start: imported by nothing the client
# needs, and, for pathlib, not by the development install's site set-up either (scripts/dev).
heavy += ("typing", "pathlib", "json", "re", "enum", "socket", "hashlib")
loaded = sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in heavy))
import json  # only now: the probe's own report
print(json.dumps([code, loaded]), file=sys.stderr)
"""


def test_the_client_imports_nothing_of_the_preview(server: Fleet) -> None:
    argv = server.preview(*CASES["change"])

    def loaded(env: dict[str, str]) -> tuple[int, list[str]]:
        # Without coverage's variables: its start-up in the probe would import typing and
        # pathlib itself.
        plain = {k: v for k, v in server.env.items() if not k.startswith("COVERAGE_")}
        done = subprocess.run(
            [sys.executable, "-c", PROBE, *argv],
            cwd=server.repo,
            env={**plain, **env},
            capture_output=True,
            timeout=WAIT,
            check=False,
        )
        code, modules = json.loads(done.stderr.splitlines()[-1])
        return code, modules

    through, alone = loaded({}), loaded({preview_client.DISABLE_ENV: "off"})

    assert through == (1, [])
    assert alone[0] == 1
    assert "cli.preview" in alone[1]  # the probe sees the heavy imports


def _wait_for(path: Path) -> None:
    deadline = time.monotonic() + WAIT
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + WAIT
    while _running(pid):
        assert time.monotonic() < deadline, f"process {pid} still runs"
        time.sleep(0.05)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _kill(pid: int) -> None:
    if _running(pid):
        os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize(
    "env",
    [
        {"TIDEGATE_CACHE_DIR": "/srv/cache/tg", "XDG_CACHE_HOME": "/xdg"},
        {"XDG_CACHE_HOME": "/xdg"},
        {"HOME": "/home/someone"},
    ],
    ids=["explicit", "xdg", "home"],
)
def test_the_client_finds_the_cache_directory_as_the_toolchain_does(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("TIDEGATE_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    assert preview_client.cache_root() == toolchain.cache_root()
    assert Path(preview_client._socket_file()) == preview_client.socket_path()
