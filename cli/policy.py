"""`tidegate policy test DIR`: run policy test cases, so users can test their own rules.

Every `*.yaml` case under DIR (the format of `policies.fixtures`: base and head units with their
rendered objects, and the findings expected) is evaluated with the built-in rules and the user
rules of `--policies DIR` (default `.tidegate/policies` when it exists), then compared with its
expectations. One line per case, a closing `N passed, M failed` line; exit 0 when every case
passes, 1 when one fails, 2 on bad input (the error names the file and field).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from core.errors import InputError
from policies.base import Rule
from policies.cel.rules import POLICY_DIR, load_user_rules
from policies.fixtures import CaseResult, evaluate_case, run_directory
from policies.registry import builtin_rules

__all__ = ["LocalFiles", "register", "run"]

_MAX_FILE = 4 << 20


class LocalFiles:
    """A directory's files as `policies.gate.RevisionFiles`, named as given on the command line.

    Only regular files inside the directory are read (no symlinks out of it).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.prefix = directory.as_posix().rstrip("/") + "/"

    def _local(self, path: str) -> Path | None:
        if not path.startswith(self.prefix):
            return None
        relative = path[len(self.prefix) :]
        target = (self.directory / relative).resolve()
        if not target.is_relative_to(self.directory.resolve()) or not target.is_file():
            return None
        return target

    def read(self, path: str) -> bytes | None:
        """Return a file's content, or None when it is not a regular file under the directory."""
        target = self._local(path)
        if target is None:
            return None
        if target.stat().st_size > _MAX_FILE:
            raise InputError(f"is larger than {_MAX_FILE} bytes", file=str(target))
        return target.read_bytes()

    def files(self, directory: str) -> list[str]:
        """Return the files under a directory (only the rule directory exists here)."""
        if directory.rstrip("/") + "/" != self.prefix or not self.directory.is_dir():
            return []
        return sorted(
            self.prefix + p.relative_to(self.directory).as_posix()
            for p in self.directory.rglob("*")
            if p.is_file() and not p.is_symlink()
        )


def register(subparsers: Any) -> None:
    """Add the `policy` command and its `test` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "policy", help="work with policies", description="Work with policies."
    )
    commands = parser.add_subparsers(dest="policy_command", required=True, metavar="COMMAND")
    test = commands.add_parser(
        "test",
        help="run policy test cases (base/head pairs with expected findings)",
        description="Run every *.yaml case under DIR with the built-in rules and the user rules "
        "of --policies. Exit 0: all pass, 1: a case fails, 2: error.",
    )
    test.add_argument("directory", type=Path, metavar="DIR")
    test.add_argument(
        "--policies",
        type=Path,
        metavar="DIR",
        help=f"user rule directory (default: {POLICY_DIR} when it exists)",
    )
    test.add_argument("--no-builtin", action="store_true", help="only the user rules")
    test.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the cases and print one line each; return the exit code."""
    rules: list[Rule] = [] if args.no_builtin else list(builtin_rules().values())
    directory = args.policies
    if directory is None and Path(POLICY_DIR).is_dir():
        directory = Path(POLICY_DIR)
    if directory is not None:
        if not directory.is_dir():
            raise InputError("--policies must be a directory", file=str(directory))
        files = LocalFiles(directory)
        user_rules, _notices = load_user_rules(files, files, directory=directory.as_posix())
        rules.extend(user_rules)
    results = run_directory(args.directory, lambda case: evaluate_case(case, rules))
    for result in results:
        print(_line(result))
    failed = sum(not result.passed for result in results)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


def _line(result: CaseResult) -> str:
    status = "PASS" if result.passed else "FAIL"
    lines = [f"{status} {result.case.file}: {result.case.name}"]
    lines += [f"  missing: {expected}" for expected in result.missing]
    lines += [
        f"  unexpected: {found.rule} on {found.ref or found.unit or 'the cluster'}: {found.message}"
        for found in result.unexpected
    ]
    return "\n".join(lines)
