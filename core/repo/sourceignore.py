"""Which files of a revision a GitRepository artifact holds: Flux's ignore rules.

source-controller archives a revision through gitignore-syntax rules (fluxcd/pkg `sourceignore`,
a port of go-git's matcher), and only what survives reaches kustomize-controller. The rules, in
order, the last matching pattern winning:

1. VCS files: `.git/`, `.gitignore`, `.gitmodules`, `.gitattributes`;
2. Flux's defaults (images, archives, CI and tool configuration), but only when the repository
   has no `.sourceignore` pattern and the GitRepository no `spec.ignore`: any such pattern
   replaces the defaults (fluxcd/pkg `SourceIgnoreFilter`), so one `.sourceignore` line brings
   `.github/` back into the artifact;
3. `.sourceignore` files: the root's, then those of sub-directories, each applying only below
   its own directory (paths matched relative to it), sub-directories in sorted order;
4. the GitRepository's `spec.ignore`.

Excluded directories are still searched for `.sourceignore` files and re-included files (so `/*`
then `!/deploy/` keeps `deploy/`), as Flux walks every file. Patterns are gitignore patterns,
matched with the `pathspec` library's `GitIgnoreSpec` (last match wins and a pattern
matching a directory matches the files below it, like go-git). Pure: files
are read through the callable given, nothing is written.
"""

from __future__ import annotations

import functools
import posixpath
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import pathspec

__all__ = [
    "DEFAULT_IGNORED_DIRS",
    "DEFAULT_IGNORED_NAMES",
    "DEFAULT_PATTERNS",
    "IGNORE_FILE",
    "VCS_PATTERNS",
    "IgnoreRules",
    "included",
    "rules_of",
]

IGNORE_FILE = ".sourceignore"

VCS_PATTERNS = (".git/", ".gitignore", ".gitmodules", ".gitattributes")
DEFAULT_PATTERNS = (
    "*.jpg",
    "*.jpeg",
    "*.gif",
    "*.png",
    "*.wmv",
    "*.flv",
    "*.tar.gz",
    "*.zip",
    ".github/",
    ".circleci/",
    ".travis.yml",
    ".gitlab-ci.yml",
    "appveyor.yml",
    ".drone.yml",
    "cloudbuild.yaml",
    "codeship-services.yml",
    "codeship-steps.yml",
    "**/.goreleaser.yml",
    "**/.sops.yaml",
    "**/.flux.yaml",
)
"""fluxcd/pkg sourceignore's default exclusions, beyond the VCS files."""

# Bounds on hostile input: an ignore file is a short list of patterns.
_MAX_PATTERNS = 10_000
_MAX_IGNORE_BYTES = 1 << 20


@dataclass(frozen=True)
class _Layer:
    domain: str
    """Directory the patterns apply below; "" is the whole artifact."""
    spec: pathspec.GitIgnoreSpec


# The default rules, as plain set lookups: most repositories have no `.sourceignore`, and
# matching every path of every revision through the patterns is the slow part of a preview.
# A test checks these agree with the patterns above; the input walk uses the names too.
DEFAULT_IGNORED_DIRS = frozenset({".git", ".github", ".circleci"})
DEFAULT_IGNORED_NAMES = frozenset(
    {
        ".gitignore",
        ".gitmodules",
        ".gitattributes",
        ".travis.yml",
        ".gitlab-ci.yml",
        "appveyor.yml",
        ".drone.yml",
        "cloudbuild.yaml",
        "codeship-services.yml",
        "codeship-steps.yml",
        ".goreleaser.yml",
        ".sops.yaml",
        ".flux.yaml",
    }
)
_DEFAULT_SUFFIXES = (".jpg", ".jpeg", ".gif", ".png", ".wmv", ".flv", ".tar.gz", ".zip")


def _default_ignored(path: str) -> bool:
    # A pattern without a slash matches a file or a directory of that name at any depth (and so
    # everything below it); a pattern ending in a slash matches directories only.
    *dirs, name = path.split("/")
    return any(
        part in DEFAULT_IGNORED_NAMES or part.endswith(_DEFAULT_SUFFIXES) for part in (*dirs, name)
    ) or not DEFAULT_IGNORED_DIRS.isdisjoint(dirs)


class IgnoreRules:
    """A compiled set of Flux ignore rules."""

    def __init__(self, layers: Sequence[_Layer], *, defaults_only: bool = False) -> None:
        self._layers = tuple(layers)
        self._defaults_only = defaults_only

    @classmethod
    def build(
        cls,
        ignore_files: Mapping[str, bytes],
        spec_ignore: str | None = None,
    ) -> IgnoreRules:
        """Compile the rules from `.sourceignore` contents by directory and `spec.ignore`.

        Args:
            ignore_files: Directory ("" for the root) -> content of its `.sourceignore`.
            spec_ignore: The GitRepository's `spec.ignore`, if any.
        """
        custom: list[_Layer] = []
        for directory in sorted(ignore_files, key=lambda d: (d != "", d)):
            lines = _lines(ignore_files[directory])
            if lines:
                custom.append(_Layer(directory, _compile(lines)))
        if spec_ignore is not None and _lines(spec_ignore.encode()):
            custom.append(_Layer("", _compile(_lines(spec_ignore.encode()))))
        if custom:
            return cls([_Layer("", _compile(VCS_PATTERNS)), *custom])
        return _defaults()

    def ignored(self, path: str) -> bool:
        """Tell whether a file (repository-relative path) is left out of the artifact."""
        if self._defaults_only:
            return _default_ignored(path)
        return self.matched(path)

    def matched(self, path: str) -> bool:
        """Like `ignored`, always through the patterns (the reference for the fast path)."""
        verdict = False
        for layer in self._layers:
            if layer.domain:
                prefix = layer.domain + "/"
                if not path.startswith(prefix):
                    continue
                rel = path[len(prefix) :]
            else:
                rel = path
            result = layer.spec.check_file(rel)
            if result.include is not None:
                verdict = result.include
        return verdict


@functools.cache
def _defaults() -> IgnoreRules:
    """Flux's default rules, compiled once: most repositories have no `.sourceignore`."""
    patterns = _compile((*VCS_PATTERNS, *DEFAULT_PATTERNS))
    return IgnoreRules([_Layer("", patterns)], defaults_only=True)


def included(
    paths: Iterable[str],
    read: Callable[[str], bytes],
    spec_ignore: str | None = None,
) -> list[str]:
    """Return the paths a GitRepository artifact keeps, reading `.sourceignore` files found.

    Args:
        paths: Every file of the revision.
        read: Reads a file of the revision.
        spec_ignore: The GitRepository's `spec.ignore`, if any.
    """
    files = list(paths)
    rules = rules_of(files, read, spec_ignore)
    return [path for path in files if not rules.ignored(path)]


def rules_of(
    paths: Iterable[str],
    read: Callable[[str], bytes],
    spec_ignore: str | None = None,
) -> IgnoreRules:
    """Return the rules of a revision: its `.sourceignore` files among `paths`, `spec.ignore`."""
    ignore_files = {
        posixpath.dirname(path): read(path)[:_MAX_IGNORE_BYTES]
        for path in paths
        if posixpath.basename(path) == IGNORE_FILE
    }
    return IgnoreRules.build(ignore_files, spec_ignore)


def _lines(content: bytes) -> list[str]:
    """The patterns of an ignore file: no blank lines, no comments, at most `_MAX_PATTERNS`."""
    text = content.decode("utf-8", "replace")
    lines = [line.rstrip("\r") for line in text.split("\n")]
    kept = [line for line in lines if line.strip() and not line.startswith("#")]
    return kept[:_MAX_PATTERNS]


def _compile(lines: Iterable[str]) -> pathspec.GitIgnoreSpec:
    return pathspec.GitIgnoreSpec.from_lines(lines)
