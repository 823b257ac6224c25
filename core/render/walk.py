"""Which repository files a `kustomize build` of one directory reads.

The set is a unit's content address and its entry in the ownership index (file -> units), so it
must be complete: when in doubt a file is included. It follows kustomization files the way
kustomize does (resources, bases, components, patches, generators' files, replacements, openapi,
crds, configurations, builtin transformer configs) and, for a directory without a kustomization
file, Flux's generated kustomization (every .yaml/.yml file below it, sub-directories with their own
kustomization file as directory resources).

Repository content is untrusted, so this walk is also a gate, the second line behind the sandbox
kustomize runs in (`core.host.sandbox`): remote bases (unless allow-listed), paths leaving the
repository (in every field that names a file, including the `files`, `envs`, `env`, `path`,
`paths` and `replacements` of builtin plugin configurations inline, in files and in directories),
symlinks, helm chart inflation and non-builtin plugins are refused with an `InputError` naming the
file and field. It cannot see what kustomize computes (a patch that adds `files` to a generator),
which is why the sandbox is the primary defence. This module reads through a `FileSource` only; it
never touches the disk or starts a process.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from core import yamlio
from core.errors import InputError
from core.host.files import FileSource
from core.host.paths import join, normalize
from core.repo.sourceignore import DEFAULT_IGNORED_DIRS, DEFAULT_IGNORED_NAMES

__all__ = [
    "KUSTOMIZATION_FILES",
    "find_kustomization",
    "generated_resources",
    "is_ignored",
    "is_remote",
    "kustomize_inputs",
]

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
"""The names kustomize recognises, in its order of preference."""

_REMOTE = re.compile(
    r"^(?:[a-z][a-z0-9+.-]*::|[a-z][a-z0-9+.-]*://|git@|"
    r"(?:github\.com|gitlab\.com|bitbucket\.org|dev\.azure\.com)[/:])",
    re.IGNORECASE,
)

# The plugins kustomize runs in-process without --enable-alpha-plugins. Anything else is an
# external plugin (exec or KRM function), which PR content may never run.
_BUILTIN_PLUGINS = frozenset(
    {
        "AnnotationsTransformer",
        "ConfigMapGenerator",
        "HashTransformer",
        "IAMPolicyGenerator",
        "ImageTagTransformer",
        "LabelTransformer",
        "NamespaceTransformer",
        "PatchJson6902Transformer",
        "PatchStrategicMergeTransformer",
        "PatchTransformer",
        "PrefixSuffixTransformer",
        "PrefixTransformer",
        "ReplacementTransformer",
        "ReplicaCountTransformer",
        "SecretGenerator",
        "SortOrderTransformer",
        "SuffixTransformer",
        "ValueAddTransformer",
    }
)
_FUNCTION_ANNOTATIONS = ("config.kubernetes.io/function", "config.k8s.io/function")

# Tests switch the refusals off to prove that the sandbox alone holds; nothing else may. When off,
# what would be refused is left out of the input set and left to kustomize (and the sandbox).
_REFUSE = True


def is_remote(entry: str) -> bool:
    """Tell whether a kustomization entry names a remote base (URL, git, go-getter form)."""
    return bool(_REMOTE.match(entry)) or "?ref=" in entry or "?version=" in entry


def is_ignored(name: str, *, is_dir: bool) -> bool:
    """Tell whether source-controller leaves an entry of this name out of its artifacts."""
    return name in (DEFAULT_IGNORED_DIRS if is_dir else DEFAULT_IGNORED_NAMES)


def find_kustomization(source: FileSource, directory: str) -> str | None:
    """Return the path of the kustomization file of `directory`, or None when it has none."""
    for name in KUSTOMIZATION_FILES:
        candidate = posixpath.join(directory, name) if directory else name
        if source.is_file(candidate):
            return candidate
    return None


def generated_resources(source: FileSource, directory: str) -> tuple[str, ...]:
    """Return what Flux's generated kustomization of `directory` lists, as repository paths.

    Every .yaml/.yml file below it, in walk order, except that a sub-directory with its own
    kustomization file is listed itself and not descended into.
    """
    found: list[str] = []
    for name in source.listdir(directory):
        path = posixpath.join(directory, name) if directory else name
        if source.is_dir(path):
            if is_ignored(name, is_dir=True):
                continue
            if find_kustomization(source, path) is not None:
                found.append(path)
            else:
                found.extend(generated_resources(source, path))
        elif name.endswith((".yaml", ".yml")) and not is_ignored(name, is_dir=False):
            found.append(path)
    return tuple(found)


def kustomize_inputs(
    source: FileSource,
    path: str,
    *,
    extra_components: Iterable[str] = (),
    allowed_remotes: Collection[str] = (),
    parsed: dict[bytes, Mapping[str, Any]] | None = None,
) -> frozenset[str]:
    """Return every repository file a `kustomize build` of `path` reads.

    Args:
        source: The repository revision.
        path: Repository-relative directory to build.
        extra_components: Component directories relative to `path` (a Flux Kustomization's
            `spec.components`); missing ones are skipped.
        allowed_remotes: URL prefixes of remote bases that may be used; their content is not
            part of the set.
        parsed: Kustomization files parsed so far, by content, to share between walks of one
            revision (many units include the same bases and components); read, never changed.

    Raises:
        InputError: a kustomization file is invalid, refers outside the repository, to a remote
            base that is not allowed, to helm charts or to a non-builtin plugin; or `path` is
            not a directory.
    """
    root = normalize(path)
    if not source.is_dir(root):
        raise InputError(f"kustomization path not found: {root or '.'}")
    walker = _Walker(source, tuple(allowed_remotes), {} if parsed is None else parsed)
    walker.directory(root)
    for index, component in enumerate(extra_components):
        target = walker.resolve(root, component, None, f"spec.components[{index}]")
        if target is not None and source.is_dir(target):
            walker.directory(target)
    return frozenset(walker.files)


class _Walker:
    """One traversal: the files seen so far and the directories already followed."""

    def __init__(
        self,
        source: FileSource,
        allowed_remotes: tuple[str, ...],
        parsed: dict[bytes, Mapping[str, Any]],
    ) -> None:
        self.source = source
        self.allowed_remotes = allowed_remotes
        self.parsed = parsed
        self.files: set[str] = set()
        self.seen: set[str] = set()
        self.resources: set[str] = set()
        """Files listed as resources (for plugin directories, whose resources are configs)."""

    def refuse(self, message: str, file: str | None, field: str) -> None:
        """Refuse what is not allowed (unless a test switched refusals off)."""
        if _REFUSE:
            raise InputError(message, file=file, field=field)

    def resolve(self, base: str, entry: str, kfile: str | None, field: str) -> str | None:
        """Return the repository path `entry` names relative to directory `base`.

        None when the path is refused but refusals are off: it is then left out of the set.
        """
        try:
            target = join(base, entry, file=kfile, field=field)
        except InputError as exc:
            self.refuse(str(exc).split(": ", 1)[-1], kfile, field)
            return None
        if self.source.is_symlink(target):
            self.refuse(
                f"{target} is a symlink; symlinks are not followed (they could point outside"
                " the repository)",
                kfile,
                field,
            )
            return None
        return target

    def directory(self, path: str) -> None:
        """Follow one directory used as a kustomization root."""
        if path in self.seen:
            return
        self.seen.add(path)
        kfile = find_kustomization(self.source, path)
        if kfile is None:
            for found in generated_resources(self.source, path):
                if self.source.is_dir(found):
                    self.directory(found)
                else:
                    self.files.add(found)
                    self.resources.add(found)
            return
        self.files.add(kfile)
        content = self.source.read(kfile)
        doc = self.parsed.get(content)
        if doc is None:
            doc = self.parsed[content] = _load_kustomization(content, kfile)
        self.kustomization(path, kfile, doc)

    def entry(self, base: str, entry: object, kfile: str, field: str) -> None:
        """Follow one file-or-directory reference (a resource, base or component)."""
        if not isinstance(entry, str):
            raise InputError("must be a string", file=kfile, field=field)
        if is_remote(entry):
            if not any(entry.startswith(prefix) for prefix in self.allowed_remotes):
                self.refuse(
                    f"remote base {entry!r} is not allowed (only repository files may be used)",
                    kfile,
                    field,
                )
            return
        target = self.resolve(base, entry, kfile, field)
        if target is None:
            return
        if self.source.is_dir(target):
            self.directory(target)
        else:
            # A missing file is recorded too: if it appears later, the address must change.
            self.files.add(target)
            self.resources.add(target)

    def file(self, base: str, entry: object, kfile: str, field: str) -> None:
        """Record one file reference (a patch, env file, openapi schema...)."""
        if not isinstance(entry, str):
            raise InputError("must be a string", file=kfile, field=field)
        if is_remote(entry):
            self.refuse(f"remote file {entry!r} is not allowed", kfile, field)
            return
        target = self.resolve(base, entry, kfile, field)
        if target is not None:
            self.files.add(target)

    def kustomization(self, base: str, kfile: str, doc: Mapping[str, Any]) -> None:
        """Follow every field of one kustomization file that reads other files."""
        for key in ("helmCharts", "helmGlobals", "helmChartInflationGenerator"):
            if doc.get(key):
                self.refuse(
                    "helm chart inflation needs kustomize --enable-helm, which is not allowed;"
                    " use a Flux HelmRelease",
                    kfile,
                    key,
                )
        for key in ("resources", "bases", "components"):
            for index, item in enumerate(_list(doc, key, kfile)):
                self.entry(base, item, kfile, f"{key}[{index}]")
        for key in ("crds", "configurations"):
            for index, item in enumerate(_list(doc, key, kfile)):
                self.file(base, item, kfile, f"{key}[{index}]")
        self.paths_in_items(base, doc, kfile, ("patches", "patchesJson6902", "replacements"))
        self.strategic_merge(base, doc, kfile)
        self.generators(base, doc, kfile)
        openapi = doc.get("openapi")
        if isinstance(openapi, Mapping) and openapi.get("path") is not None:
            self.file(base, openapi["path"], kfile, "openapi.path")
        for key in ("generators", "transformers", "validators"):
            for index, item in enumerate(_list(doc, key, kfile)):
                self.plugin(base, item, kfile, f"{key}[{index}]")

    def paths_in_items(
        self, base: str, doc: Mapping[str, Any], kfile: str, keys: tuple[str, ...]
    ) -> None:
        """Record the `path` of each item of list fields such as `patches`."""
        for key in keys:
            for index, item in enumerate(_list(doc, key, kfile)):
                if isinstance(item, Mapping) and item.get("path") is not None:
                    self.file(base, item["path"], kfile, f"{key}[{index}].path")

    def strategic_merge(self, base: str, doc: Mapping[str, Any], kfile: str) -> None:
        """Record `patchesStrategicMerge` entries that are file names (others are inline)."""
        for index, item in enumerate(_list(doc, "patchesStrategicMerge", kfile)):
            if isinstance(item, str) and "\n" not in item and ": " not in item:
                self.file(base, item, kfile, f"patchesStrategicMerge[{index}]")

    def generators(self, base: str, doc: Mapping[str, Any], kfile: str) -> None:
        """Record the files and env files of configMapGenerator and secretGenerator."""
        for key in ("configMapGenerator", "secretGenerator"):
            for index, item in enumerate(_list(doc, key, kfile)):
                if isinstance(item, Mapping):
                    for path, field in _generator_files(item, f"{key}[{index}]"):
                        self.file(base, path, kfile, field)

    def plugin(self, base: str, item: object, kfile: str, field: str) -> None:
        """Follow a generators/transformers/validators entry; only builtin plugins pass."""
        if not isinstance(item, str):
            raise InputError("must be a string", file=kfile, field=field)
        if "\n" in item or ": " in item:
            self.builtin(item.encode(), kfile, field, lambda p, f: self.file(base, p, kfile, f))
            return
        target = self.resolve(base, item, kfile, field)
        if target is None:
            return
        if self.source.is_dir(target):
            self.plugin_directory(base, target, field)
            return
        self.files.add(target)
        if self.source.is_file(target):
            self.plugin_file(base, target, field)

    def plugin_file(self, base: str, config: str, field: str) -> None:
        """Check one plugin configuration file; its paths are loaded relative to `base`."""
        self.builtin(
            self.source.read(config),
            config,
            field,
            # A builtin's paths are loaded relative to the kustomization, not the config file.
            lambda p, f: self.file(base, p, config, f),
        )

    def plugin_directory(self, base: str, directory: str, field: str) -> None:
        """Follow a plugin directory: a kustomization whose resources are plugin configs.

        kustomize builds it and configures each resulting object as a plugin, with the loader
        of the kustomization that names the directory: its paths are relative to `base`.
        """
        inner = _Walker(self.source, self.allowed_remotes, self.parsed)
        inner.directory(directory)
        self.files |= inner.files
        for config in sorted(inner.resources):
            if self.source.is_file(config):
                self.plugin_file(base, config, field)

    def builtin(
        self, data: bytes, file: str, field: str, record_path: Callable[[object, str], None]
    ) -> None:
        """Refuse plugin configurations that are not kustomize builtins; record their paths."""
        try:
            _check_builtin(data, file, field, record_path)
        except InputError:
            if _REFUSE:
                raise


def _list(doc: Mapping[str, Any], key: str, kfile: str) -> list[Any]:
    value = doc.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InputError("must be a list", file=kfile, field=key)
    return value


def _load_kustomization(content: bytes, kfile: str) -> Mapping[str, Any]:
    """Parse a kustomization file, naming it in any error."""
    try:
        doc = yamlio.load(content)
    except yamlio.YAMLError as exc:
        raise InputError(f"invalid YAML: {_yaml_problem(exc)}", file=kfile) from exc
    if doc is None:
        return {}
    if not isinstance(doc, Mapping):
        raise InputError("a kustomization must be a mapping", file=kfile)
    return doc


def _check_builtin(
    data: bytes, file: str, field: str, record_path: Callable[[object, str], None]
) -> None:
    """Refuse plugin configurations that are not kustomize builtins; record their `path`s."""
    try:
        docs = [d for d in yamlio.load_all(data) if d is not None]
    except yamlio.YAMLError as exc:
        raise InputError(f"invalid YAML: {_yaml_problem(exc)}", file=file, field=field) from exc
    for doc in docs:
        if not isinstance(doc, Mapping):
            raise InputError("a plugin configuration must be a mapping", file=file, field=field)
        meta = doc.get("metadata")
        annotations = meta.get("annotations") if isinstance(meta, Mapping) else None
        is_function = isinstance(annotations, Mapping) and any(
            key in annotations for key in _FUNCTION_ANNOTATIONS
        )
        if (
            is_function
            or not str(doc.get("apiVersion", "")).startswith("builtin")
            or doc.get("kind") not in _BUILTIN_PLUGINS
        ):
            raise InputError(
                f"plugin {doc.get('kind')!r} is not allowed: only kustomize builtin"
                " transformers and generators may be used (no exec or KRM function plugins)",
                file=file,
                field=field,
            )
        for path, where in _builtin_files(doc, field):
            record_path(path, where)


def _generator_files(item: Mapping[str, Any], where: str) -> Iterable[tuple[object, str]]:
    """The files a ConfigMap or Secret generator reads, each with its field."""
    for n, spec in enumerate(_items(item.get("files"))):
        # `key=path` names the data key; the file is what follows the first `=`.
        yield str(spec).split("=", 1)[-1], f"{where}.files[{n}]"
    for n, env in enumerate(_items(item.get("envs"))):
        yield env, f"{where}.envs[{n}]"
    if item.get("env"):
        yield item["env"], f"{where}.env"


def _builtin_files(doc: Mapping[str, Any], field: str) -> Iterable[tuple[object, str]]:
    """The files a builtin plugin configuration reads, each with its field.

    Generators read `files`, `envs` and `env`; patch transformers `path` and `paths`; the
    replacement transformer each `replacements[].path`.
    """
    if doc.get("path") is not None:
        yield doc["path"], f"{field}.path"
    for n, path in enumerate(_items(doc.get("paths"))):
        yield path, f"{field}.paths[{n}]"
    for n, item in enumerate(_items(doc.get("replacements"))):
        if isinstance(item, Mapping) and item.get("path") is not None:
            yield item["path"], f"{field}.replacements[{n}].path"
    yield from _generator_files(doc, field)


def _items(value: object) -> list[Any]:
    """A list field's items; a lone value counts as one (kustomize is lenient there too)."""
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _yaml_problem(exc: yamlio.YAMLError) -> str:
    """Describe a YAML error by its problem and position, without quoting the content."""
    if isinstance(exc, yamlio.MarkedYAMLError):
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        return f"{exc.problem or exc.context or 'parse error'}{where}"
    return "parse error"
