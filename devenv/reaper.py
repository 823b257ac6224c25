"""Ends every process a demo started, and removes its scratch directory, once the demo is gone.

`tidegate demo` starts `python -m devenv.reaper` first, in a session of its own (a terminal's
Ctrl-C does not reach it), and keeps the write end of a pipe on the reaper's stdin. The reaper
creates the scratch directory, prints its path and waits for the pipe to close. Every process the
demo starts after that (and whatever those start in turn) inherits the environment variable
`MARKER` set to the scratch directory. The pipe closes however the demo ends: a clean stop, an
exception, or a SIGKILL that gave it no chance to run any clean-up of its own. The reaper then
SIGKILLs every process still carrying the marker and removes the directory.

Finding processes by an inherited marker rather than by recorded process ids also catches a child
whose start was interrupted before the demo recorded it, and the children of children.

Should a reaper itself be SIGKILLed, the next one reclaims what it left: each reaper records its
process id and start time in its directory (`OWNER_FILE`), and a starting reaper sweeps and
removes every directory of the same user whose recorded owner is no longer running.

It must not signal a process whose environment lacks the exact marker entry, nor remove any path
but the directory it created.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["MARKER", "OWNER_FILE", "PREFIX", "main", "marked", "reclaim_stale", "sweep"]

MARKER = "TIDEGATE_DEMO_SCRATCH"
PREFIX = "tidegate-demo-"
OWNER_FILE = ".reaper"
# A process may fork while it is being swept: look again until none is left, within a bound.
_SWEEP_SECONDS = 30.0


def marked(scratch: Path, *, exclude: frozenset[int] = frozenset()) -> list[int]:
    """Process ids whose environment holds `MARKER=<scratch>` (zombies have none left)."""
    entry = f"{MARKER}={scratch}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) in exclude:
            continue
        try:
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue  # gone, or not ours to read
        if entry in environ.split(b"\0"):
            found.append(int(proc.name))
    return found


def sweep(scratch: Path, *, exclude: frozenset[int] = frozenset()) -> list[int]:
    """SIGKILL every process carrying the marker until none is left; return the ids killed."""
    exclude = exclude | {os.getpid()}
    killed: list[int] = []
    deadline = time.monotonic() + _SWEEP_SECONDS
    while time.monotonic() < deadline:
        pids = marked(scratch, exclude=exclude)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        killed += [pid for pid in pids if pid not in killed]
        time.sleep(0.05)
    return killed


def reclaim_stale(parent: Path) -> list[Path]:
    """Sweep and remove this user's scratch directories whose reaper is gone; return them."""
    reclaimed = []
    for scratch in sorted(parent.glob(f"{PREFIX}*")):
        try:
            if scratch.is_symlink() or scratch.lstat().st_uid != os.getuid():
                continue
            owner = (scratch / OWNER_FILE).read_text().split()
        except OSError:
            continue  # not a reaper's directory (or `--preview-only`'s, which cleans up itself)
        if len(owner) == 2 and owner[0].isdigit() and _start_time(int(owner[0])) == owner[1]:
            continue  # its reaper runs
        sweep(scratch)
        shutil.rmtree(scratch, ignore_errors=True)
        reclaimed.append(scratch)
    return reclaimed


def _start_time(pid: int) -> str | None:
    """A process's start time in clock ticks since boot: with the id, it names one process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def main() -> int:
    """Create the scratch directory, print it, and clean up after the pipe on stdin closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    owner = int(sys.argv[1]) if len(sys.argv) > 1 else os.getppid()
    reclaim_stale(Path(tempfile.gettempdir()))
    scratch = Path(tempfile.mkdtemp(prefix=PREFIX)).resolve()
    (scratch / OWNER_FILE).write_text(f"{os.getpid()} {_start_time(os.getpid())}\n")
    sys.stdout.write(f"{scratch}\n")
    sys.stdout.flush()
    sys.stdin.buffer.read()  # returns at end of file: the demo closed the pipe or is gone
    # The demo is the parent of most marked processes and may still be reaping them; it carries
    # the marker only if it was started with one, and is never ours to kill.
    sweep(scratch, exclude=frozenset({owner}))
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
