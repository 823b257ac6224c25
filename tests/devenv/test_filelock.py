"""The development caches' file lock: held for the block only, and gone with a killed holder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from devenv.filelock import exclusive

ROOT = Path(__file__).resolve().parents[2]

# Another process trying the lock without waiting: exit 0 if it got it, 1 if it is held.
PROBE = """
import fcntl, sys
with open(sys.argv[1], "w") as handle:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        sys.exit(1)
"""

# Takes the lock through `exclusive`, says so, then dies by SIGKILL inside the block.
KILLED_HOLDER = """
import os, signal, sys
from pathlib import Path
from devenv.filelock import exclusive
with exclusive(Path(sys.argv[1])):
    print("held", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _free(lock: Path) -> bool:
    done = subprocess.run([sys.executable, "-c", PROBE, str(lock)], check=False)
    assert done.returncode in (0, 1)
    return done.returncode == 0


def test_the_lock_is_held_for_the_block_only(tmp_path: Path) -> None:
    lock = tmp_path / "cache" / ".tool.lock"  # its directory does not exist yet

    with exclusive(lock):
        held = not _free(lock)

    assert held
    assert _free(lock)


def test_a_killed_holder_leaves_the_lock_free(tmp_path: Path) -> None:
    lock = tmp_path / ".tool.lock"
    holder = subprocess.run(
        [sys.executable, "-c", KILLED_HOLDER, str(lock)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )

    assert (holder.returncode, holder.stdout) == (-signal.SIGKILL, "held\n")
    assert _free(lock)
