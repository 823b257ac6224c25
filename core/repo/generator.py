"""Flux 2.7 ArtifactGenerators: parse them and compose their ExternalArtifacts as file views.

An ArtifactGenerator (`source.extensions.fluxcd.io/v1beta1`, run by source-watcher) copies files
out of source artifacts into new ExternalArtifacts (`source.toolkit.fluxcd.io/v1`, named by
`spec.artifacts[].name`, in the generator's namespace). Kustomizations that point at an
ExternalArtifact see that composed layout, not the repository's, so a preview must run the copy
rules at each revision from that revision's files.

The rules follow source-watcher's builder (`internal/builder`), which is what runs, where its
documentation is shorter:

- `from: "@alias/path"` without glob characters (`*?[]`): a file goes to `to` when `to` does not
  end with `/` and is not an existing directory, else to `to/<basename>`; a directory goes to
  `to/<its basename>/...` (trailing slash or not); `@alias/` (the root) lands its content in `to`.
- With glob characters the pattern is matched like Go's `fs.Glob`: one path segment per pattern
  segment, `**` acting as `*`; matched directories are copied whole. A pattern ending in `/**`
  strips the literal prefix before it (`@s/apps/base/**` -> `to/<rest>`); other patterns keep the
  matched path (`@s/apps/*.yaml` -> `to/apps/x.yaml`). No match, or everything excluded, fails.
- `exclude` patterns (doublestar syntax) are matched against the source path, against the path
  relative to the pattern's literal prefix, and, for patterns without `/`, against the base name;
  inside a copied directory, against the path relative to it.
- `strategy: Overwrite` (default) replaces an existing file; `Merge` deep-merges a YAML file into
  an existing one (maps merged, lists and scalars replaced, like Helm values); `Extract` unpacks
  `.tar.gz`/`.tgz` archives.
- Operations run in order, later files overwriting earlier ones; the result is archived with
  Flux's default exclusions (`*.png`, `.github/`, ...), so those never reach the artifact.

Hostile input: every path is normalised and refused when it would leave the artifact; archives
are read in memory with bounds on members and sizes, and only regular files are taken. This module
reads through `FileView`s and writes nothing; failures are `InputError`s naming the file, object
and field.
"""

from __future__ import annotations

import io
import posixpath
import re
import tarfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NoReturn

from core import yamlio
from core.errors import InputError
from core.repo import sourceignore
from core.repo.view import FileView, made_id

__all__ = [
    "GENERATOR_GROUP",
    "GENERATOR_KIND",
    "ArtifactSpec",
    "CopyRule",
    "GeneratorSource",
    "GeneratorSpec",
    "compose",
    "parse_generator",
]

GENERATOR_GROUP = "source.extensions.fluxcd.io"
GENERATOR_KIND = "ArtifactGenerator"

_ALIAS = re.compile(r"^[a-z0-9]([a-z0-9_-]*[a-z0-9])?$")
_SOURCE_KINDS = ("GitRepository", "OCIRepository", "Bucket", "HelmChart", "ExternalArtifact")
_STRATEGIES = ("Overwrite", "Merge", "Extract")
_GLOB_CHARS = frozenset("*?[]")
_TARBALL_SUFFIXES = (".tar.gz", ".tgz")

# Bounds for archives unpacked by `Extract` (PR content is hostile).
_MAX_ARCHIVE_MEMBERS = 10_000
_MAX_ARCHIVE_BYTES = 256 << 20
_MAX_ARTIFACT_FILES = 100_000


@dataclass(frozen=True)
class GeneratorSource:
    """One `spec.sources[]` entry."""

    alias: str
    kind: str
    name: str
    namespace: str


@dataclass(frozen=True)
class CopyRule:
    """One `copy[]` operation."""

    source: str
    """Alias of the source it copies from."""
    pattern: str
    """Path or glob inside that source (what follows `@alias/`)."""
    to: str
    """Destination inside the artifact (what follows `@artifact/`)."""
    to_dir: bool
    """`to` ended with `/`."""
    exclude: tuple[str, ...] = ()
    strategy: str = "Overwrite"
    field: str = ""
    """Where the rule is written, for messages (`spec.artifacts[0].copy[1]`)."""


@dataclass(frozen=True)
class ArtifactSpec:
    """One `spec.artifacts[]` entry: an ExternalArtifact and how to compose it."""

    name: str
    copy: tuple[CopyRule, ...]
    field: str


@dataclass(frozen=True)
class GeneratorSpec:
    """A parsed ArtifactGenerator."""

    namespace: str
    name: str
    sources: Mapping[str, GeneratorSource]
    artifacts: tuple[ArtifactSpec, ...]
    file: str | None = None

    @property
    def label(self) -> str:
        """`ArtifactGenerator/namespace/name`, for messages."""
        return f"{GENERATOR_KIND}/{self.namespace}/{self.name}"

    def artifact(self, name: str) -> ArtifactSpec | None:
        """Return the artifact of that name, if this generator composes it."""
        return next((a for a in self.artifacts if a.name == name), None)


def parse_generator(obj: Mapping[str, Any], *, file: str | None = None) -> GeneratorSpec:
    """Parse an ArtifactGenerator, naming the file, object and field of any mistake."""
    return _Parser(obj, file).parse()


class _Parser:
    def __init__(self, obj: Mapping[str, Any], file: str | None) -> None:
        self.obj = obj
        self.file = file
        meta: Mapping[str, Any] = obj.get("metadata") or {}
        meta = meta if isinstance(meta, Mapping) else {}
        self.name = str(meta.get("name") or "")
        self.namespace = str(meta.get("namespace") or "flux-system")
        self.label = f"{GENERATOR_KIND}/{self.namespace}/{self.name}"

    def fail(self, field: str, message: str) -> NoReturn:
        raise InputError(message, file=self.file, obj=self.label, field=field)

    def items(self, node: Any, field: str) -> list[Mapping[str, Any]]:
        if node is None:
            return []
        if not isinstance(node, list):
            self.fail(field, "must be a list")
        for index, item in enumerate(node):
            if not isinstance(item, Mapping):
                self.fail(f"{field}[{index}]", "must be a mapping")
        return list(node)

    def text(self, node: Mapping[str, Any], key: str, field: str) -> str:
        value = node.get(key)
        if not isinstance(value, str) or not value:
            self.fail(f"{field}.{key}", "is required and must be a string")
        return value

    def parse(self) -> GeneratorSpec:
        spec = self.obj.get("spec")
        if not isinstance(spec, Mapping):
            self.fail("spec", "is required")
        if spec.get("pathPattern") is not None:
            self.fail("spec.pathPattern", "is not supported by the preview yet")
        sources: dict[str, GeneratorSource] = {}
        for index, item in enumerate(self.items(spec.get("sources"), "spec.sources")):
            field = f"spec.sources[{index}]"
            alias = self.text(item, "alias", field)
            if not _ALIAS.match(alias):
                self.fail(f"{field}.alias", f"{alias!r} is not a valid alias")
            if alias in sources:
                self.fail(f"{field}.alias", f"{alias!r} is used twice")
            kind = self.text(item, "kind", field)
            if kind not in _SOURCE_KINDS:
                self.fail(f"{field}.kind", f"must be one of {', '.join(_SOURCE_KINDS)}")
            namespace = str(item.get("namespace") or self.namespace)
            sources[alias] = GeneratorSource(alias, kind, self.text(item, "name", field), namespace)
        artifacts = []
        names: set[str] = set()
        for index, item in enumerate(self.items(spec.get("artifacts"), "spec.artifacts")):
            field = f"spec.artifacts[{index}]"
            name = self.text(item, "name", field)
            if name in names:
                self.fail(f"{field}.name", f"{name!r} is used twice")
            names.add(name)
            rules = [
                self.copy_rule(rule, f"{field}.copy[{i}]", sources)
                for i, rule in enumerate(self.items(item.get("copy"), f"{field}.copy"))
            ]
            if not rules:
                self.fail(f"{field}.copy", "needs at least one operation")
            artifacts.append(ArtifactSpec(name, tuple(rules), field))
        if not artifacts:
            self.fail("spec.artifacts", "needs at least one artifact")
        return GeneratorSpec(self.namespace, self.name, sources, tuple(artifacts), self.file)

    def copy_rule(
        self, rule: Mapping[str, Any], field: str, sources: Mapping[str, GeneratorSource]
    ) -> CopyRule:
        origin = self.text(rule, "from", field)
        target = self.text(rule, "to", field)
        if not origin.startswith("@") or "/" not in origin:
            self.fail(f"{field}.from", "must be @alias/path")
        alias, _, pattern = origin[1:].partition("/")
        if alias not in sources:
            self.fail(f"{field}.from", f"source alias {alias!r} is not in spec.sources")
        if not target.startswith("@artifact/"):
            self.fail(f"{field}.to", "must start with @artifact/")
        strategy = rule.get("strategy") or "Overwrite"
        if strategy not in _STRATEGIES:
            self.fail(f"{field}.strategy", f"must be one of {', '.join(_STRATEGIES)}")
        exclude = rule.get("exclude") or []
        if not isinstance(exclude, list) or not all(isinstance(e, str) for e in exclude):
            self.fail(f"{field}.exclude", "must be a list of strings")
        for pattern_text in exclude:
            try:
                _doublestar(pattern_text)
            except re.error:
                self.fail(f"{field}.exclude", f"{pattern_text!r} is not a valid pattern")
        dest = target.removeprefix("@artifact/")
        return CopyRule(
            source=alias,
            pattern=pattern,
            to=_inside(dest, lambda m: self.fail(f"{field}.to", m)),
            to_dir=target.endswith("/"),
            exclude=tuple(exclude),
            strategy=str(strategy),
            field=field,
        )


def _inside(path: str, fail: Callable[[str], NoReturn]) -> str:
    """Normalise a path inside an artifact; refuse one that leaves it."""
    if "\\" in path or "\0" in path:
        fail(f"{path!r} is not a POSIX path")
    clean = posixpath.normpath("/" + path).lstrip("/") if path else ""
    if ".." in path.split("/") and posixpath.normpath(path).startswith(".."):
        fail(f"{path!r} leaves the artifact")
    return clean


def compose(
    generator: GeneratorSpec,
    artifact: ArtifactSpec,
    sources: Mapping[str, FileView],
    read_blob: Callable[[str], bytes],
) -> FileView:
    """Run an artifact's copy rules over its sources' views; return the ExternalArtifact's view.

    Args:
        generator: The parsed generator.
        artifact: Which of its artifacts to compose.
        sources: Alias -> the view of that source at this revision.
        read_blob: Reads a repository blob by id (for the returned view).

    Raises:
        InputError: a rule matches nothing, reads what does not exist, or leaves the artifact.
    """
    builder = _Builder(generator, artifact, sources, read_blob)
    for rule in artifact.copy:
        builder.apply(rule)
    return builder.finish()


class _Builder:
    """The staging directory of one artifact, as path -> content id."""

    def __init__(
        self,
        generator: GeneratorSpec,
        artifact: ArtifactSpec,
        sources: Mapping[str, FileView],
        read_blob: Callable[[str], bytes],
    ) -> None:
        self.read_blob = read_blob
        self.generator = generator
        self.artifact = artifact
        self.sources = sources
        self.files: dict[str, str] = {}
        self.origins: dict[str, str] = {}
        self.made: dict[str, bytes] = {}
        self.dirs: set[str] = {""}

    def fail(self, rule: CopyRule, message: str) -> NoReturn:
        raise InputError(
            message, file=self.generator.file, obj=self.generator.label, field=rule.field
        )

    def apply(self, rule: CopyRule) -> None:
        view = self.sources[rule.source]
        if not _GLOB_CHARS & set(rule.pattern):
            self._single(rule, view)
            return
        if rule.strategy == "Extract":
            matches = _glob(view, rule.pattern, recursive=True)
        else:
            matches = _glob(view, rule.pattern, recursive=False)
        if not matches:
            self.fail(rule, f"no files match {rule.pattern!r} in source {rule.source!r}")
        prefix = _literal_prefix(rule.pattern)
        kept = [m for m in matches if not _excluded(m, rule.exclude, prefix)]
        if not kept:
            self.fail(rule, f"all files matching {rule.pattern!r} were excluded")
        for match in kept:
            if rule.strategy == "Extract":
                if match.endswith(_TARBALL_SUFFIXES) and view.is_file(match):
                    self._extract(rule, view, match, rule.to)
                continue
            dest = _glob_destination(rule.pattern, match, rule.to)
            self._copy(rule, view, match, dest)

    def _single(self, rule: CopyRule, view: FileView) -> None:
        path = _inside(rule.pattern, lambda m: self.fail(rule, m))
        if view.is_dir(path):
            if rule.strategy == "Extract":
                self.fail(rule, f"Extract needs a tarball, {rule.pattern!r} is a directory")
            base = posixpath.basename(path)
            self._copy_dir(rule, view, path, posixpath.join(rule.to, base) if base else rule.to)
            return
        if not view.is_file(path):
            self.fail(rule, f"{rule.pattern!r} does not exist in source {rule.source!r}")
        if _excluded(path, rule.exclude, ""):
            return
        if rule.strategy == "Extract":
            if not path.endswith(_TARBALL_SUFFIXES):
                self.fail(rule, f"Extract needs a .tar.gz or .tgz file, not {rule.pattern!r}")
            self._extract(rule, view, path, rule.to)
            return
        if rule.to_dir or rule.to in self.dirs:
            dest = posixpath.join(rule.to, posixpath.basename(path))
        else:
            dest = rule.to
        self._copy_file(rule, view, path, dest)

    def _copy(self, rule: CopyRule, view: FileView, path: str, dest: str) -> None:
        if view.is_dir(path):
            self._copy_dir(rule, view, path, dest)
        else:
            self._copy_file(rule, view, path, dest)

    def _copy_dir(self, rule: CopyRule, view: FileView, path: str, dest: str) -> None:
        """Copy a directory whole (no merging), skipping what the excludes match inside it."""
        self._mkdir(dest)
        for file in view.walk(path):
            rel = file[len(path) + 1 :] if path else file
            if _excluded_in_dir(rel, rule.exclude):
                continue
            self._put(rule, posixpath.join(dest, rel) if dest else rel, view, file)

    def _copy_file(self, rule: CopyRule, view: FileView, path: str, dest: str) -> None:
        if rule.strategy == "Merge" and dest in self.files:
            merged = _merge_yaml(
                self._read(dest), view.read(path), path, lambda m: self.fail(rule, m)
            )
            self._make(rule, dest, merged, view.origin(path))
            return
        self._put(rule, dest, view, path)

    def _extract(self, rule: CopyRule, view: FileView, path: str, dest: str) -> None:
        """Unpack a tarball's regular files into `dest`; links and devices are skipped."""
        total = 0
        try:
            with tarfile.open(fileobj=io.BytesIO(view.read(path)), mode="r:gz") as archive:
                for count, member in enumerate(archive):
                    if count >= _MAX_ARCHIVE_MEMBERS:
                        self.fail(rule, f"{path} has more than {_MAX_ARCHIVE_MEMBERS} members")
                    if not member.isfile():
                        continue
                    total += member.size
                    if total > _MAX_ARCHIVE_BYTES:
                        self.fail(rule, f"{path} unpacks to more than {_MAX_ARCHIVE_BYTES} bytes")
                    name = _inside(member.name, lambda m: self.fail(rule, f"{path}: {m}"))
                    handle = archive.extractfile(member)
                    content = handle.read() if handle is not None else b""
                    target = posixpath.join(dest, name) if dest else name
                    self._make(rule, target, content, view.origin(path))
        except (tarfile.TarError, OSError, EOFError) as exc:
            self.fail(rule, f"{path} is not a valid .tar.gz archive: {exc}")

    def _read(self, dest: str) -> bytes:
        content_id = self.files[dest]
        return self.made[content_id] if content_id in self.made else self.read_blob(content_id)

    def _put(self, rule: CopyRule, dest: str, view: FileView, path: str) -> None:
        dest = self._target(rule, dest)
        content_id = view.files[path]
        if content_id.startswith("made:"):
            self.made[content_id] = view.read(path)
        self.files[dest] = content_id
        self.origins[dest] = view.origin(path)

    def _make(self, rule: CopyRule, dest: str, content: bytes, origin: str) -> None:
        dest = self._target(rule, dest)
        content_id = made_id(content)
        self.made[content_id] = content
        self.files[dest] = content_id
        self.origins[dest] = origin

    def _target(self, rule: CopyRule, dest: str) -> str:
        dest = _inside(dest, lambda m: self.fail(rule, m))
        if not dest or dest in self.dirs:
            self.fail(rule, f"cannot write a file over the directory {dest or '@artifact/'}")
        if len(self.files) >= _MAX_ARTIFACT_FILES:
            self.fail(rule, f"the artifact would hold more than {_MAX_ARTIFACT_FILES} files")
        self._mkdir(posixpath.dirname(dest))
        return dest

    def _mkdir(self, directory: str) -> None:
        while directory and directory not in self.dirs:
            self.dirs.add(directory)
            directory = posixpath.dirname(directory)

    def finish(self) -> FileView:
        # Archiving drops Flux's default exclusions from the generated artifact too.
        rules = sourceignore.IgnoreRules.build({})
        kept = {p: c for p, c in self.files.items() if not rules.ignored(p)}
        label = f"ExternalArtifact/{self.generator.namespace}/{self.artifact.name}"
        return FileView(
            label,
            kept,
            self.read_blob,
            origins={p: self.origins[p] for p in kept},
            made={c: self.made[c] for c in kept.values() if c in self.made},
        )


def _literal_prefix(pattern: str) -> str:
    """The leading path segments of a glob without glob characters (`apps/*/x` -> `apps`)."""
    parts = []
    for part in pattern.split("/"):
        if _GLOB_CHARS & set(part):
            break
        parts.append(part)
    return "/".join(p for p in parts if p)


def _glob_destination(pattern: str, match: str, to: str) -> str:
    """Where a glob match goes: `dir/**` strips its literal `dir/`, other globs keep the path."""
    if pattern.endswith("/**"):
        prefix = pattern.removesuffix("/**")
        if match.startswith(prefix + "/"):
            return posixpath.join(to, match[len(prefix) + 1 :])
    return posixpath.join(to, match)


def _glob(view: FileView, pattern: str, *, recursive: bool) -> list[str]:
    """Match files and directories of a view, as Go's `fs.Glob` or (recursive) doublestar."""
    if recursive:
        regex = _doublestar(pattern)
        candidates = set(view.walk(""))
        candidates |= {posixpath.dirname(p) for p in candidates} - {""}
        return sorted(p for p in candidates if regex.fullmatch(p))
    found = [""]
    for segment in [s for s in pattern.split("/") if s]:
        regex = _go_segment(segment)
        found = [
            posixpath.join(parent, name) if parent else name
            for parent in found
            if view.is_dir(parent)
            for name in view.listdir(parent)
            if regex.fullmatch(name)
        ]
    return sorted(p for p in found if p)


def _excluded(path: str, patterns: tuple[str, ...], prefix: str) -> bool:
    """Match excludes against the source path, the path below the literal prefix, the name."""
    rel = path[len(prefix) + 1 :] if prefix and path.startswith(prefix + "/") else None
    for pattern in patterns:
        regex = _doublestar(pattern)
        if regex.fullmatch(path) or (rel is not None and regex.fullmatch(rel)):
            return True
        if "/" not in pattern and regex.fullmatch(posixpath.basename(path)):
            return True
    return False


def _excluded_in_dir(rel: str, patterns: tuple[str, ...]) -> bool:
    """Match excludes inside a copied directory; an excluded directory excludes its files."""
    parts = rel.split("/")
    for depth in range(1, len(parts) + 1):
        sub = "/".join(parts[:depth])
        for pattern in patterns:
            regex = _doublestar(pattern)
            if regex.fullmatch(sub):
                return True
            if "/" not in pattern and regex.fullmatch(parts[depth - 1]):
                return True
    return False


@lru_cache(maxsize=512)
def _go_segment(segment: str) -> re.Pattern[str]:
    """One path segment of a Go `path.Match` pattern as a regex (`*`, `?`, `[...]`, escapes)."""
    return re.compile(_translate(segment, doublestar=False))


@lru_cache(maxsize=512)
def _doublestar(pattern: str) -> re.Pattern[str]:
    """A doublestar pattern as a regex: `**` spans segments, `{a,b}` alternates."""
    return re.compile(_translate(pattern, doublestar=True))


def _translate(pattern: str, *, doublestar: bool) -> str:
    out: list[str] = []
    index, depth = 0, 0
    while index < len(pattern):
        char = pattern[index]
        if char == "*":
            if doublestar and pattern.startswith("**", index):
                index += 2
                if pattern.startswith("/", index):
                    out.append("(?:[^/]*/)*")
                    index += 1
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.find("]", index + 2)
            if end < 0:
                raise re.error(f"unclosed [ in {pattern!r}")
            body = pattern[index + 1 : end]
            negate = body[:1] in ("^", "!")
            body = body[1:] if negate else body
            out.append("[" + ("^" if negate else "") + body.replace("\\", "\\\\") + "]")
            index = end
        elif char == "\\" and index + 1 < len(pattern):
            index += 1
            out.append(re.escape(pattern[index]))
        elif doublestar and char == "{":
            depth += 1
            out.append("(?:")
        elif doublestar and char == "}" and depth:
            depth -= 1
            out.append(")")
        elif doublestar and char == "," and depth:
            out.append("|")
        else:
            out.append(re.escape(char))
        index += 1
    if depth:
        raise re.error(f"unclosed {{ in {pattern!r}")
    return "".join(out)


def _merge_yaml(base: bytes, overlay: bytes, path: str, fail: Callable[[str], NoReturn]) -> bytes:
    """Deep-merge YAML documents as source-watcher does: maps merge, everything else replaces."""
    merged: dict[str, Any] = {}
    for content, name in ((base, "the existing file"), (overlay, path)):
        try:
            docs = list(yamlio.load_all(content))
        except yamlio.YAMLError:
            fail(f"cannot merge {name}: invalid YAML")
        for doc in docs:
            if doc is None:
                continue
            if not isinstance(doc, dict):
                fail(f"cannot merge {name}: a document is not a mapping")
            merged = _merge_maps(merged, doc)
    return yamlio.dump(merged).encode()


def _merge_maps(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overlay.items():
        current = out.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            out[key] = _merge_maps(current, value)
        else:
            out[key] = value
    return out
