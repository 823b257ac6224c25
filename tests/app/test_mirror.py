"""Creating a repository's git mirror while other workers create it too (`app.mirror`)."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest

from app.mirror import ensure_mirror
from core.errors import TidegateError

WORKERS = 6


def _is_bare_repository(path: Path) -> bool:
    out = subprocess.run(
        ["git", "-C", str(path), "rev-parse", "--is-bare-repository"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() == "true"


def _race(mirror: Path) -> list[BaseException]:
    """Every worker calls `ensure_mirror` at the same moment; what any of them raised."""
    start = threading.Barrier(WORKERS)
    failures: list[BaseException] = []

    def worker() -> None:
        start.wait()
        try:
            assert ensure_mirror(mirror) == mirror
            assert _is_bare_repository(mirror)
        except BaseException as exc:  # an assertion too: the test reports them all
            failures.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


def test_workers_starting_on_a_new_repository_at_once_all_get_one_whole_mirror(
    tmp_path: Path,
) -> None:
    # Before mirrors were renamed into place, most rounds failed: one worker's `git init` found
    # the other's files, or its fetch found HEAD without a config yet.
    for round_ in range(15):
        mirror = tmp_path / f"round-{round_}" / "github_acme_fleet"
        assert _race(mirror) == []
        # The losers' private copies are gone: only the mirror is left.
        assert [p.name for p in mirror.parent.iterdir()] == [mirror.name]


def test_an_existing_mirror_is_kept_with_its_refs(tmp_path: Path) -> None:
    mirror = ensure_mirror(tmp_path / "mirror")
    subprocess.run(["git", "-C", str(mirror), "config", "tidegate.kept", "yes"], check=True)
    assert ensure_mirror(mirror) == mirror
    kept = subprocess.run(
        ["git", "-C", str(mirror), "config", "tidegate.kept"], capture_output=True, text=True
    )
    assert kept.stdout.strip() == "yes"


def test_an_empty_directory_left_by_a_crash_becomes_a_whole_mirror(tmp_path: Path) -> None:
    (tmp_path / "mirror").mkdir()
    assert _is_bare_repository(ensure_mirror(tmp_path / "mirror"))


def test_a_directory_that_is_not_a_repository_is_named_and_left_alone(tmp_path: Path) -> None:
    mirror = tmp_path / "github_acme_fleet"
    mirror.mkdir()
    (mirror / "objects").mkdir()
    with pytest.raises(TidegateError, match="github_acme_fleet: the directory exists"):
        ensure_mirror(mirror)
    assert [p.name for p in mirror.iterdir()] == ["objects"]
    assert [p.name for p in tmp_path.iterdir()] == ["github_acme_fleet"]
