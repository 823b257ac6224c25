"""The render sandbox: which tool processes run confined, how, and whether the host can do it.

kustomize and helm read attacker-written repository content, so each of their processes runs
through `core.host.confine` (rlimits, no_new_privs, Landlock, execve): it may read only its work
directory and its own binary, write only a scratch directory, and open no TCP connection. Landlock
needs no privilege and is allowed by the default seccomp profiles of Docker, containerd and CRI-O,
so it works in an ordinary Kubernetes pod; user namespaces usually do not.

`Sandbox.probe` checks at start-up, in a real confined process, that files and TCP are denied.
When they are not, rendering is refused (`SandboxError`), unless the operator chose otherwise with
the one documented setting (`--sandbox` / `TIDEGATE_SANDBOX`): `required` (the default), `files`
(Landlock without TCP rules, for kernels older than 6.7) or `off`. Never a silent downgrade.

This module builds command lines; it never starts the tools itself (`core.host.command` does).
"""

from __future__ import annotations

import functools
import json
import os
import sys
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import core
from core.errors import CommandError, TidegateError
from core.host.command import Limits, run

__all__ = [
    "ENV_SETTING",
    "MODES",
    "Confinement",
    "Sandbox",
    "SandboxError",
    "explain",
    "from_setting",
]

MODES = ("required", "files", "off")
"""The values of the setting: full sandbox, files only (no TCP rules), none."""

ENV_SETTING = "TIDEGATE_SANDBOX"
"""The environment variable holding the setting when no command-line flag gives it."""

# The directory holding the `core` package: the confining interpreter imports it from there and
# nothing else (-I -S: no site-packages, no user paths, no environment).
_ROOT = str(Path(core.__file__).resolve().parent.parent)
_BOOT = (
    f"import sys; sys.path.append({_ROOT!r}); "
    "from core.host.confine import main; sys.exit(main(sys.argv[1:]))"
)
# Where the dynamic loader finds shared libraries; needed only by dynamically linked tools
# (the pinned Go tools are static).
_LOADER_DIRS = ("/lib", "/lib64", "/usr/lib", "/usr/lib64", "/etc/ld.so.cache")
_PROBE_TIMEOUT = 30.0


class SandboxError(TidegateError):
    """The sandbox cannot be set up, so untrusted content is not rendered."""


@dataclass(frozen=True)
class Sandbox:
    """How tool processes are confined. Make one with `probe` or `from_setting`."""

    mode: str
    """One of `MODES`."""
    abi: int = 0
    """The kernel's Landlock ABI (0 when off)."""

    @property
    def active(self) -> bool:
        """Whether tool processes are confined at all."""
        return self.mode != "off"

    @classmethod
    def off(cls) -> Sandbox:
        """No confinement: only for trusted content, chosen explicitly by the operator."""
        return cls("off")

    @classmethod
    def probe(cls, mode: str = "required") -> Sandbox:
        """Check in a confined process that the sandbox holds; return it.

        Raises:
            SandboxError: Landlock is unavailable, or (in `required` mode) cannot deny TCP.
        """
        if mode == "off":
            return cls.off()
        if mode not in MODES:
            raise SandboxError(f"unknown sandbox setting {mode!r}; use one of {', '.join(MODES)}")
        argv = [*_interpreter(), "--probe"]
        if mode == "files":
            argv.append("--no-network-rules")
        try:
            output = run(argv, limits=Limits(timeout=_PROBE_TIMEOUT))
        except CommandError as exc:
            reason = exc.stderr.strip().removeprefix("sandbox: ") or str(exc)
            raise SandboxError(_refusal(reason)) from None
        result = json.loads(output)
        if not result.get("files"):
            raise SandboxError(_refusal("Landlock did not deny a file read"))
        if mode == "required" and not result.get("network"):
            raise SandboxError(_refusal("Landlock did not deny a TCP connection"))
        return cls(mode, int(result["abi"]))

    def confine(
        self, *, read: Iterable[Path] = (), write: Iterable[Path] = ()
    ) -> Confinement | None:
        """Return the confinement of one tool process, or None when the sandbox is off.

        Args:
            read: Files and directories the tool may read (its work directory).
            write: Directories it may write (a scratch directory).
        """
        if not self.active:
            return None
        return Confinement(self, tuple(read), tuple(write))


@dataclass(frozen=True)
class Confinement:
    """What one tool process may read and write; `core.host.command.run` applies it."""

    sandbox: Sandbox
    read: tuple[Path, ...]
    write: tuple[Path, ...]

    def wrap(self, argv: Sequence[str], memory: int) -> list[str]:
        """Return the command line that runs `argv` confined, with an address-space limit."""
        tool = str(Path(argv[0]).resolve())
        options = ["--exec", tool, "--memory", str(memory)]
        if _is_dynamic(tool):
            options += [arg for path in _LOADER_DIRS if os.path.exists(path)
                        for arg in ("--exec", path)]  # fmt: skip
        for path in self.read:
            options += ["--read", str(path)]
        for path in self.write:
            options += ["--write", str(path)]
        # Character devices (/dev/null) need their own rule; the tools may use it.
        options += ["--write", os.devnull]
        if self.sandbox.mode == "files":
            options.append("--no-network-rules")
        return [*_interpreter(), *options, "--", tool, *argv[1:]]


def explain(message: str, confine: Confinement | None) -> str:
    """Say so when a confined tool failed because the sandbox denied it something."""
    if confine is None or "permission denied" not in message.lower():
        return message
    return (
        f"{message} (denied by the sandbox: the tool may read only the unit's files and open no"
        " network connection)"
    )


def from_setting(flag: str | None) -> Sandbox:
    """Probe the sandbox the operator asked for, once per process.

    The setting is the flag, else `TIDEGATE_SANDBOX`, else `required`.

    Raises:
        SandboxError: the sandbox asked for cannot be set up.
    """
    mode = flag or os.environ.get(ENV_SETTING) or "required"
    return _probed(mode)


_PROBED: dict[str, Sandbox] = {}
_LOCK = threading.Lock()


def _probed(mode: str) -> Sandbox:
    """Probe each mode once per process."""
    with _LOCK:
        if mode not in _PROBED:
            _PROBED[mode] = Sandbox.probe(mode)
        return _PROBED[mode]


def _interpreter() -> list[str]:
    return [sys.executable, "-I", "-S", "-c", _BOOT]


def _refusal(reason: str) -> str:
    return (
        f"the render sandbox cannot be set up ({reason}); untrusted repository content is not"
        f" rendered without it. It needs Linux 6.7 or newer with Landlock enabled. To render"
        f" trusted content anyway, set --sandbox=files (no network rules) or --sandbox=off,"
        f" or {ENV_SETTING}=files|off"
    )


_ELF_MAGIC = b"\x7fELF"
_PT_INTERP = 3


@functools.lru_cache(maxsize=32)
def _is_dynamic(binary: str) -> bool:
    """Tell whether an ELF binary names a dynamic loader (PT_INTERP); scripts count as dynamic."""
    try:
        with open(binary, "rb") as handle:
            header = handle.read(64)
            if header[:4] != _ELF_MAGIC or header[4] != 2:  # only 64-bit ELF is parsed
                return True
            order: Literal["little", "big"] = "little" if header[5] == 1 else "big"
            phoff = int.from_bytes(header[32:40], order)
            phentsize = int.from_bytes(header[54:56], order)
            phnum = int.from_bytes(header[56:58], order)
            handle.seek(phoff)
            table = handle.read(phentsize * phnum)
    except OSError:
        return True
    return any(
        int.from_bytes(table[i : i + 4], order) == _PT_INTERP
        for i in range(0, len(table), phentsize)
    )
