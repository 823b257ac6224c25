"""The only place the engine starts a subprocess.

Repository content is untrusted, so every tool (git, kustomize, helm) runs through `run`, which
bounds its time and memory, gives it a minimal environment, captures its output and turns any
failure into a `CommandError` with the tail of stderr. Callers never touch `subprocess` directly.
"""

from __future__ import annotations

import os
import resource
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import CommandError

__all__ = ["DEFAULT_LIMITS", "Limits", "run"]

# The environment a tool sees: enough to run, nothing of the caller's credentials.
_PASSED_ENV = ("PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "TZ")


@dataclass(frozen=True)
class Limits:
    """Bounds for one subprocess."""

    timeout: float = 120.0
    """Seconds before the process is killed."""
    memory: int = 4 << 30
    """Address-space limit in bytes (Go tools need headroom above their heap)."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Variables added to the minimal environment."""


DEFAULT_LIMITS = Limits()


def _limit_memory(limit: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


def run(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    stdin: bytes | None = None,
    limits: Limits = DEFAULT_LIMITS,
    ok_codes: Sequence[int] = (0,),
) -> bytes:
    """Run a command and return its stdout; raise `CommandError` on any failure."""
    env = {k: v for k, v in os.environ.items() if k in _PASSED_ENV}
    env.update(limits.env)
    try:
        done = subprocess.run(
            list(argv),
            cwd=cwd,
            input=stdin,
            capture_output=True,
            timeout=limits.timeout,
            env=env,
            preexec_fn=_limit_memory(limits.memory),
            check=False,
        )
    except FileNotFoundError as exc:
        raise CommandError(argv, "is not installed or not on PATH") from exc
    except subprocess.TimeoutExpired as exc:
        raise CommandError(
            argv, f"timed out after {limits.timeout:g}s", stderr=_text(exc.stderr)
        ) from exc
    except OSError as exc:
        raise CommandError(argv, f"could not start: {exc.strerror}") from exc
    if done.returncode not in ok_codes:
        raise CommandError(argv, f"failed (exit {done.returncode})", stderr=_text(done.stderr))
    return done.stdout


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode(errors="replace")
