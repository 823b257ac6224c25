"""The sandbox on this kernel: what a confined process can and cannot do, with real tools."""

from __future__ import annotations

import http.server
import os
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli import main as cli_main
from core.errors import CommandError
from core.host import confine, sandbox
from core.host.command import Limits, run
from core.host.sandbox import Sandbox, SandboxError

# A confined Python needs its own installation readable (the standard library).
PYTHON_HOME = Path(sys.base_prefix)


@pytest.fixture
def jail() -> Sandbox:
    return Sandbox.probe("required")


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    path = outside / "canary.txt"
    path.write_text("CANARY-5a1f\n")
    return path


def _python(jail: Sandbox, code: str, *, read: list[Path], write: list[Path]) -> str:
    """Run Python code confined; return its stdout, or raise `CommandError`."""
    confined = jail.confine(read=[PYTHON_HOME, *read], write=write)
    argv = [sys.executable, "-I", "-S", "-c", code]
    return run(argv, limits=Limits(timeout=60), confine=confined).decode()


def test_probe_finds_landlock_with_network_rules(jail: Sandbox) -> None:
    assert jail.mode == "required"
    assert jail.abi >= 4
    assert jail.active


def test_confined_process_reads_and_writes_only_what_is_allowed(
    jail: Sandbox, tmp_path: Path, canary: Path
) -> None:
    work, scratch = tmp_path / "work", tmp_path / "scratch"
    work.mkdir()
    scratch.mkdir()
    (work / "input.txt").write_text("input")
    code = f"""
import os
def attempt(action):
    try:
        action()
        return "allowed"
    except PermissionError:
        return "denied"
print(attempt(lambda: open({str(work / "input.txt")!r}).read()))
print(attempt(lambda: open({str(canary)!r}).read()))
print(attempt(lambda: open("/proc/self/environ").read()))
print(attempt(lambda: open({str(scratch / "out.txt")!r}, "w").write("x")))
print(attempt(lambda: open({str(work / "new.txt")!r}, "w").write("x")))
print(attempt(lambda: open({str(canary.parent / "new.txt")!r}, "w").write("x")))
print("exists" if os.path.exists({str(canary)!r}) else "hidden")  # metadata is not confined
"""
    lines = _python(jail, code, read=[work], write=[scratch]).split()
    assert lines == ["allowed", "denied", "denied", "allowed", "denied", "denied", "exists"]


def test_confined_process_cannot_signal_outside_and_has_no_core_dumps(jail: Sandbox) -> None:
    code = f"""
import os, resource
try:
    os.kill({os.getpid()}, 0)
    print("signalled")
except PermissionError:
    print("denied")
print(resource.getrlimit(resource.RLIMIT_CORE)[0])
"""
    assert _python(jail, code, read=[], write=[]).split() == ["denied", "0"]


def test_confined_process_cannot_reach_an_abstract_socket_outside(jail: Sandbox) -> None:
    name = f"\0tidegate-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(name)
        server.listen(1)
        code = f"""
import socket
try:
    socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).connect({name!r})
    print("connected")
except PermissionError:
    print("denied")
open("/dev/null", "w").write("x")  # /dev/null stays writable
"""
        assert _python(jail, code, read=[], write=[]).split() == ["denied"]


def test_udp_is_not_confined(jail: Sandbox) -> None:
    # A documented limit of Landlock: only TCP has rules. Pod egress policy must cover UDP.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(30)
        port = receiver.getsockname()[1]
        code = "import socket\nsender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        code += f"sender.sendto(b'x', ('127.0.0.1', {port}))\n"
        _python(jail, code, read=[], write=[])
        assert receiver.recv(16) == b"x"


@pytest.fixture
def listener() -> Iterator[tuple[int, list[str]]]:
    """An HTTP server on loopback that records every request."""
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()


def test_confined_process_can_neither_connect_nor_bind(
    jail: Sandbox, listener: tuple[int, list[str]]
) -> None:
    port, seen = listener
    code = f"""
import socket
for action in ("connect", "bind"):
    s = socket.socket()
    try:
        s.connect(("127.0.0.1", {port})) if action == "connect" else s.bind(("127.0.0.1", 0))
        print("allowed")
    except PermissionError:
        print("denied")
"""
    assert _python(jail, code, read=[], write=[]).split() == ["denied", "denied"]
    assert seen == []


def test_files_mode_confines_files_but_not_tcp(listener: tuple[int, list[str]]) -> None:
    port, _ = listener
    files_only = Sandbox.probe("files")
    code = f"""
import socket
socket.create_connection(("127.0.0.1", {port})).close()
try:
    open("/etc/passwd").read()
    print("read")
except PermissionError:
    print("denied")
"""
    assert _python(files_only, code, read=[], write=[]).split() == ["denied"]


def test_memory_limit_is_applied_in_the_sandbox(jail: Sandbox) -> None:
    code = "import resource; print(resource.getrlimit(resource.RLIMIT_AS)[0])"
    confined = jail.confine(read=[PYTHON_HOME])
    argv = [sys.executable, "-I", "-S", "-c", code]
    output = run(argv, limits=Limits(memory=3 << 30), confine=confined)
    assert int(output) == 3 << 30


def test_kustomize_does_not_follow_a_symlink_out_of_its_work_directory(
    jail: Sandbox, kustomize_bin: Path, tmp_path: Path, canary: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "kustomization.yaml").write_text("configMapGenerator: [{name: c, files: [link]}]\n")
    (work / "link").symlink_to(canary)
    argv = [str(kustomize_bin), "build", str(work), "--load-restrictor", "LoadRestrictionsNone"]
    with pytest.raises(CommandError) as caught:
        run(argv, confine=jail.confine(read=[work]))
    assert "permission denied" in str(caught.value)
    assert "in the sandbox" in str(caught.value)
    assert "CANARY" not in str(caught.value)
    # The same build outside the sandbox does read it: the sandbox is what stops it.
    assert b"CANARY" in run(argv)


def test_helm_opens_no_connection(
    jail: Sandbox, helm_bin: Path, tmp_path: Path, listener: tuple[int, list[str]]
) -> None:
    port, seen = listener
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "HELM_CACHE_HOME": str(home), "HELM_CONFIG_HOME": str(home)}
    argv = [str(helm_bin), "pull", "--repo", f"http://127.0.0.1:{port}", "chart"]
    argv += ["--destination", str(home)]
    with pytest.raises(CommandError) as caught:
        run(argv, cwd=home, limits=Limits(env=env), confine=jail.confine(write=[home]))
    assert "connect: permission denied" in str(caught.value)
    assert seen == []


def test_old_kernels_without_tcp_rules_fail_closed() -> None:
    with pytest.raises(confine.ConfineError, match="ABI 3 cannot deny network connections"):
        confine.check_abi(3, network_rules=True)
    confine.check_abi(3, network_rules=False)  # the explicit files-only setting
    confine.check_abi(4, network_rules=True)
    with pytest.raises(confine.ConfineError):
        confine.check_abi(0, network_rules=False)


def test_wrapper_refuses_to_run_the_tool_when_confinement_fails(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    argv = [sys.executable, "-I", "-S", "-c", sandbox._BOOT, "--read", str(tmp_path / "absent")]
    argv += ["--", "/usr/bin/touch", str(marker)]
    with pytest.raises(CommandError) as caught:
        run(argv)
    assert f"exit {confine.FAILED}" in str(caught.value)
    assert "sandbox: cannot open" in str(caught.value)
    assert not marker.exists()


def test_handled_rights_grow_with_the_abi() -> None:
    assert confine.handled_fs(1) == (1 << 13) - 1
    assert confine.handled_fs(3) == (1 << 15) - 1
    assert confine.handled_fs(7) == (1 << 16) - 1


@pytest.fixture
def broken_landlock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The probe's confined process failing as it does where Landlock is missing."""
    fake = (
        "import sys; sys.stderr.write('sandbox: Landlock unavailable: no Landlock'); sys.exit(125)"
    )
    monkeypatch.setattr(sandbox, "_interpreter", lambda: [sys.executable, "-c", fake])
    monkeypatch.setattr(sandbox, "_PROBED", {})


@pytest.mark.usefixtures("broken_landlock")
def test_without_landlock_rendering_is_refused_with_a_clear_message() -> None:
    with pytest.raises(SandboxError) as caught:
        sandbox.from_setting(None)
    message = str(caught.value)
    assert "render sandbox cannot be set up (Landlock unavailable: no Landlock)" in message
    assert "--sandbox=off" in message
    assert "TIDEGATE_SANDBOX" in message


@pytest.mark.usefixtures("broken_landlock")
def test_preview_stops_before_rendering_without_the_sandbox(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli_main.main(["preview", "--repo", str(tmp_path), "--head", "HEAD"])
    assert code == 2
    assert "render sandbox cannot be set up" in capsys.readouterr().err


@pytest.mark.usefixtures("broken_landlock")
def test_sandbox_off_is_explicit_and_announced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(sandbox.ENV_SETTING, "off")
    assert sandbox.from_setting(None) == Sandbox.off()
    assert Sandbox.off().confine(read=[tmp_path]) is None
    cli_main.main(["preview", "--repo", str(tmp_path / "not-a-repo"), "--sandbox", "off"])
    assert "sandbox off: kustomize and helm run unconfined" in capsys.readouterr().err
    # The flag wins over the environment.
    monkeypatch.setenv(sandbox.ENV_SETTING, "maybe")
    assert sandbox.from_setting("off") == Sandbox.off()


def test_files_mode_is_announced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli_main.main(["preview", "--repo", str(tmp_path / "not-a-repo"), "--sandbox", "files"])
    assert "sandbox files: kustomize and helm run without network rules" in capsys.readouterr().err


def test_unknown_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(sandbox.ENV_SETTING, "maybe")
    monkeypatch.setattr(sandbox, "_PROBED", {})
    with pytest.raises(SandboxError, match="unknown sandbox setting 'maybe'"):
        sandbox.from_setting(None)
