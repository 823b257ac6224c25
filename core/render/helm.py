"""Render one Flux HelmRelease the way helm-controller installs it, without a cluster.

Charts from a HelmRepository are downloaded beforehand by `core.sources.helmrepo` and arrive here as
local archives: this module opens no network connection. `chart_from_source` copies a GitRepository
chart out of the repository; `merge_values` merges `valuesFrom` documents and `spec.values` in
Flux's order; and `render_helm_release` runs `helm template` offline (empty repository and registry
configuration, helm's homes in the work directory, no hooks, no tests), applies
`postRenderers[].kustomize` through kustomize, flattens Lists into their items (as helm's apply
does: any document with an `items` array is a list to Kubernetes' decoder, so a Secret wrapped in a
`v1/List` is applied, and masked, as a Secret), puts namespaced objects without a namespace into the
release namespace (as helm install does), adds helm-controller's `helm.toolkit.fluxcd.io/name` and
`.../namespace` labels. The objects are returned in cleartext (`core.cleartext.Clear`); the caller
masks them at its one boundary. Nothing here makes a value from a Secret (valuesFrom Secrets are
refused before), so no object carries Secret-derived paths; Secrets in the chart are masked by
kind. It never writes outside its work or cache directories and never shows their paths in
messages.
"""

from __future__ import annotations

import dataclasses
import json
import posixpath
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from core import yamlio
from core.cleartext import Clear
from core.errors import BudgetError, CommandError, InputError, RenderError
from core.host.command import DEFAULT_LIMITS, Limits, run
from core.host.files import FileSource
from core.host.paths import join, normalize
from core.host.sandbox import Sandbox, explain, from_setting
from core.model import ObjectRef, RawObject
from core.scope import apply_scope, crd_scopes
from core.units import HelmReleaseSpec

__all__ = [
    "chart_from_source",
    "chart_inputs",
    "merge_values",
    "render_helm_release",
]

_LABEL_NAME = "helm.toolkit.fluxcd.io/name"
_LABEL_NAMESPACE = "helm.toolkit.fluxcd.io/namespace"
_LIST_NESTING = 10
"""Lists inside Lists flattened before the render fails; real charts nest none."""


# --------------------------------------------------------------------------------------------
# Charts.


def _helm_limits(limits: Limits, home: Path) -> Limits:
    """Helm's homes and configuration in `home`: nothing of the caller's is read or written."""
    home.mkdir(parents=True, exist_ok=True)
    repositories = home / "repositories.yaml"
    registry = home / "registry.json"
    if not repositories.exists():
        repositories.write_text("apiVersion: v1\nrepositories: []\n")
    if not registry.exists():
        registry.write_text("{}\n")
    env = {
        **limits.env,
        "HOME": str(home),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
        "HELM_REPOSITORY_CONFIG": str(repositories),
        "HELM_REPOSITORY_CACHE": str(home / "cache" / "repository"),
        "HELM_REGISTRY_CONFIG": str(registry),
        "HELM_PLUGINS": str(home / "plugins"),
    }
    return dataclasses.replace(limits, env=env)


def chart_inputs(source: FileSource, path: str) -> tuple[str, ...]:
    """Return the repository files a GitRepository chart at `path` reads, sorted.

    Every file below the chart directory, plus local dependencies (`file://` repositories in
    Chart.yaml) recursively.

    Raises:
        InputError: the chart directory does not exist or a dependency leaves the repository.
    """
    files: set[str] = set()
    _chart_files(source, normalize(path), files, set())
    return tuple(sorted(files))


def _chart_files(source: FileSource, chart: str, files: set[str], seen: set[str]) -> None:
    if chart in seen:
        return
    seen.add(chart)
    if not source.is_dir(chart):
        raise InputError(f"chart directory not found: {chart or '.'}")
    files.update(_all_files(source, chart))
    meta_file = posixpath.join(chart, "Chart.yaml") if chart else "Chart.yaml"
    if not source.is_file(meta_file):
        return
    try:
        meta = yamlio.load(source.read(meta_file)) or {}
    except yamlio.YAMLError as exc:
        raise InputError("invalid YAML", file=meta_file) from exc
    for index, dep in enumerate(meta.get("dependencies") or [] if isinstance(meta, dict) else []):
        repo = str(dep.get("repository") or "") if isinstance(dep, dict) else ""
        if repo.startswith("file://"):
            dep_path = join(
                chart,
                repo.removeprefix("file://"),
                file=meta_file,
                field=f"dependencies[{index}].repository",
            )
            _chart_files(source, dep_path, files, seen)


def _all_files(source: FileSource, directory: str) -> list[str]:
    found = []
    for name in source.listdir(directory):
        path = posixpath.join(directory, name) if directory else name
        if source.is_dir(path):
            found.extend(_all_files(source, path))
        else:
            found.append(path)
    return found


def chart_from_source(source: FileSource, path: str, dest: Path) -> Path:
    """Copy the chart directory at repository `path` into `dest` and return `dest`.

    Local `file://` dependencies are copied too, at their relative places, so helm finds them.
    """
    root = normalize(path)
    for file in chart_inputs(source, path):
        rel = posixpath.relpath(file, root or ".")
        target = (dest / rel).resolve()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read(file))
    return dest


# --------------------------------------------------------------------------------------------
# Values.


def merge_values(
    values_from_docs: Sequence[tuple[Any, str | None]], values: Mapping[str, Any]
) -> dict[str, Any]:
    r"""Merge values as helm-controller does: each valuesFrom in order, then `spec.values`.

    Args:
        values_from_docs: For each `valuesFrom` entry, in order, its content and target path.
            Without a target path the content is a parsed values document, deep-merged; with
            one, the content is a single value (kept as a string) set at that dotted path
            (`a.b[0].c`, `\.` for a literal dot).
        values: The inline `spec.values`, merged last.

    Raises:
        InputError: a values document is not a mapping or a target path is invalid.
    """
    result: dict[str, Any] = {}
    for index, (document, target_path) in enumerate(values_from_docs):
        if target_path:
            _set_path(result, target_path, "" if document is None else str(document))
        elif document is None:
            continue
        elif not isinstance(document, Mapping):
            raise InputError("must be a mapping of values", field=f"spec.valuesFrom[{index}]")
        else:
            result = _deep_merge(result, document)
    return _deep_merge(result, values)


def _deep_merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """Merge maps recursively; anything else in `overlay` replaces what `base` has."""
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = json.loads(json.dumps(value)) if isinstance(value, list | dict) else value
    return out


def _split_path(path: str) -> list[str | int]:
    r"""Split `a.b[0].c` into keys and list indexes; `\.` is a literal dot."""
    parts: list[str | int] = []
    for raw in re.split(r"(?<!\\)\.", path):
        match = re.fullmatch(r"((?:[^\[\]]|\\.)*)((?:\[\d+\])*)", raw)
        if not match or (not match.group(1) and not match.group(2)):
            raise InputError(f"invalid target path {path!r}", field="spec.valuesFrom.targetPath")
        if match.group(1):
            parts.append(match.group(1).replace("\\.", "."))
        parts.extend(int(n) for n in re.findall(r"\[(\d+)\]", match.group(2)))
    return parts


def _set_path(values: dict[str, Any], path: str, value: str) -> None:
    """Set one value at a target path, creating maps and lists on the way."""
    parts = _split_path(path)
    node: Any = values
    for part, following in zip(parts, [*parts[1:], None], strict=True):
        empty: Any = [] if isinstance(following, int) else {}
        if isinstance(part, int):
            if not isinstance(node, list):
                raise InputError(f"invalid target path {path!r}", field="spec.valuesFrom")
            while len(node) <= part:
                node.append(None)
            if following is None:
                node[part] = value
            elif not isinstance(node[part], dict | list):
                node[part] = empty
            node = node[part]
        else:
            if not isinstance(node, dict):
                raise InputError(f"invalid target path {path!r}", field="spec.valuesFrom")
            if following is None:
                node[part] = value
            elif not isinstance(node.get(part), dict | list):
                node[part] = empty
            node = node[part]


# --------------------------------------------------------------------------------------------
# Rendering.


def render_helm_release(
    spec: HelmReleaseSpec,
    chart: Path,
    values: Mapping[str, Any],
    *,
    helm: Path,
    workdir: Path,
    kube_version: str = "1.33",
    limits: Limits = DEFAULT_LIMITS,
    kustomize: Path | None = None,
    sandbox: Sandbox | None = None,
    chart_crds: set[ObjectRef] | None = None,
) -> tuple[Clear, ...]:
    """Template a HelmRelease offline and return the objects helm-controller would apply.

    Args:
        spec: The parsed HelmRelease.
        chart: A packaged chart (.tgz) or chart directory.
        values: The merged values (see `merge_values`).
        helm: The helm binary.
        workdir: A private directory for helm's homes and files.
        kube_version: The Kubernetes version charts see in `.Capabilities`.
        limits: Time and memory bound of each tool process.
        kustomize: The kustomize binary, needed only for `postRenderers`.
        sandbox: Confines helm and kustomize to the work directory and the chart; None means
            the operator's setting (`core.host.sandbox.from_setting`), the full sandbox by default.
        chart_crds: Receives the identities of the CRDs from the chart's `crds/` directory,
            which helm-controller applies by its CRD policy rather than with the release.

    Raises:
        RenderError: templating or post-rendering failed, or an object is invalid.
        SandboxError: the sandbox asked for cannot be set up.
    """
    where = f"{spec.unit} (file {spec.file})" if spec.file else str(spec.unit)
    values_file = workdir / "values.yaml"
    values_file.write_text(json.dumps(values, sort_keys=True))
    bounded = _helm_limits(limits, workdir / "helm")
    home = workdir / "helm"
    argv = [
        str(helm), "template", spec.release_name, str(chart),
        "--namespace", spec.target_namespace,
        "--values", str(values_file),
        "--include-crds", "--skip-tests", "--no-hooks",
        "--kube-version", kube_version,
        "--repository-config", str(home / "repositories.yaml"),
        "--registry-config", str(home / "registry.json"),
    ]  # fmt: skip
    jail = sandbox if sandbox is not None else from_setting(None)
    # helm reads the chart, the values and its homes; it writes only its homes.
    confine = jail.confine(read=[workdir, chart], write=[home])
    try:
        output = run(argv, cwd=workdir, limits=bounded, confine=confine)
    except CommandError as exc:
        message = explain(_scrub(exc.stderr or str(exc), workdir), confine)
        raise RenderError(f"{where}: helm template failed: {message}") from None
    crds, output = _split_chart_crds(output, where)
    for index, renderer in enumerate(spec.post_renderers):
        output = _post_render(output, renderer, index, kustomize, workdir, limits, where, jail)
    scopes = crd_scopes(doc for doc, _ in crds)
    from_crds = _chart_crds(crds, spec)
    if chart_crds is not None:
        chart_crds.update(ObjectRef.of(crd.body) for crd in from_crds)
    return from_crds + _finish(output, spec, where, scopes)


# A chart's own crds/ directory, or a subchart's: `podinfo/crds/x.yaml`,
# `podinfo/charts/sub/crds/x.yaml` (not `podinfo/templates/crds/x.yaml`, which is a template).
_CHART_CRDS_PATH = re.compile(r"^[^/]+(?:/charts/[^/]+)*/crds/")
_SOURCE_LINE = re.compile(rb"^# Source: (.+)$", re.MULTILINE)
_SEPARATOR = re.compile(rb"^---[ \t]*$", re.MULTILINE)


def _split_chart_crds(output: bytes, where: str) -> tuple[list[tuple[RawObject, str]], bytes]:
    """Take the chart's `crds/` out of helm's output: helm-controller applies them on its own.

    helm prints each file with a `# Source:` line; a crds file holding several documents has it
    only before the first, so a document without one belongs to the file before it. Only
    CustomResourceDefinitions are kept, as helm-controller drops any other kind found there, and
    they are neither post-rendered nor labelled (they are not part of the release).
    """
    crds: list[tuple[RawObject, str]] = []
    rest: list[bytes] = []
    source = ""
    for chunk in _SEPARATOR.split(output):
        found = _SOURCE_LINE.search(chunk)
        if found is not None:
            source = found.group(1).decode("utf-8", "replace").strip()
        if not _CHART_CRDS_PATH.match(source):
            rest.append(chunk)
            continue
        try:
            docs = [d for d in yamlio.load_all(chunk) if d is not None]
        except yamlio.YAMLError as exc:
            raise RenderError(f"{where}: the chart's {source} is not valid YAML") from exc
        for doc in docs:
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                if not isinstance(doc.get("metadata"), dict) or not doc["metadata"].get("name"):
                    raise RenderError(f"{where}: a CRD in the chart's {source} has no name")
                crds.append((doc, source))
    return crds, b"\n---\n".join(rest)


def _chart_crds(crds: Sequence[tuple[RawObject, str]], spec: HelmReleaseSpec) -> tuple[Clear, ...]:
    manifests = []
    for doc, _ in crds:
        meta = doc["metadata"]
        meta.pop("namespace", None)
        meta["labels"] = {
            **(meta.get("labels") or {}),
            _LABEL_NAME: spec.unit.name,
            _LABEL_NAMESPACE: spec.unit.namespace,
        }
        manifests.append(Clear(doc, spec.file))
    return tuple(manifests)


def _post_render(
    output: bytes,
    renderer: Mapping[str, Any],
    index: int,
    kustomize: Path | None,
    workdir: Path,
    limits: Limits,
    where: str,
    sandbox: Sandbox,
) -> bytes:
    """Apply one `postRenderers[].kustomize` entry with kustomize; fail on anything else."""
    config = renderer.get("kustomize")
    if set(renderer) - {"kustomize"} or not isinstance(config, Mapping):
        raise RenderError(f"{where}: spec.postRenderers[{index}] is not supported (only kustomize)")
    if kustomize is None:
        raise RenderError(f"{where}: spec.postRenderers[{index}] needs kustomize, not configured")
    unknown = set(config) - {"patches", "images", "patchesStrategicMerge", "patchesJson6902"}
    if unknown:
        raise RenderError(
            f"{where}: spec.postRenderers[{index}].kustomize.{sorted(unknown)[0]} is not supported"
        )
    directory = workdir / f"post-{index}"
    directory.mkdir()
    (directory / "resources.yaml").write_bytes(output)
    doc: dict[str, Any] = {"resources": ["resources.yaml"]}
    if config.get("patches"):
        doc["patches"] = [dict(p) for p in config["patches"]]
    if config.get("images"):
        doc["images"] = [dict(i) for i in config["images"]]
    if config.get("patchesStrategicMerge"):
        doc["patchesStrategicMerge"] = [yamlio.dump(p) for p in config["patchesStrategicMerge"]]
    if config.get("patchesJson6902"):
        doc["patchesJson6902"] = [
            {"target": p.get("target"), "patch": json.dumps(p.get("patch"))}
            for p in config["patchesJson6902"]
        ]
    (directory / "kustomization.yaml").write_text(yamlio.dump(doc))
    argv = [
        str(kustomize),
        "build",
        str(directory),
        "--load-restrictor",
        "LoadRestrictionsRootOnly",
    ]
    confine = sandbox.confine(read=[directory], write=[workdir / "helm"])
    try:
        return run(
            argv, cwd=directory, limits=_helm_limits(limits, workdir / "helm"), confine=confine
        )
    except CommandError as exc:
        message = explain(_scrub(exc.stderr or str(exc), workdir), confine)
        raise RenderError(f"{where}: spec.postRenderers[{index}] failed: {message}") from None


def _finish(
    output: bytes,
    spec: HelmReleaseSpec,
    where: str,
    chart_scopes: Mapping[tuple[str, str], bool],
) -> tuple[Clear, ...]:
    """Parse, default namespaces, add helm-controller's labels and check."""
    try:
        docs = [d for d in yamlio.load_all(output) if d is not None]
    except yamlio.YAMLError as exc:
        raise RenderError(f"{where}: the chart produced invalid YAML") from exc
    except BudgetError as exc:
        raise exc.at(f"{where}: the chart's output") from None
    objects: list[RawObject] = []
    for doc in _flatten(docs, where):
        if not isinstance(doc, dict) or not doc.get("apiVersion") or not doc.get("kind"):
            raise RenderError(f"{where}: the chart produced an object without apiVersion or kind")
        meta = doc.get("metadata")
        if not isinstance(meta, dict) or not meta.get("name"):
            raise RenderError(f"{where}: the chart produced a {doc['kind']} without a name")
        objects.append(doc)
    scopes = {**chart_scopes, **crd_scopes(objects)}
    seen: set[ObjectRef] = set()
    manifests = []
    for obj in objects:
        apply_scope(obj, scopes, default_namespace=spec.target_namespace)
        ref = ObjectRef.of(obj)
        if ref in seen:
            raise RenderError(f"{where}: the chart produced {ref} twice")
        seen.add(ref)
        meta = obj["metadata"]
        meta["labels"] = {
            **(meta.get("labels") or {}),
            _LABEL_NAME: spec.unit.name,
            _LABEL_NAMESPACE: spec.unit.namespace,
        }
        manifests.append(Clear(obj, spec.file))
    return tuple(manifests)


def _flatten(docs: Sequence[Any], where: str, level: int = 0) -> list[Any]:
    """Replace every List by its items, recursively, as Kubernetes' decoder reads them."""
    flat: list[Any] = []
    for doc in docs:
        items = doc.get("items") if isinstance(doc, dict) else None
        if not isinstance(items, list):
            flat.append(doc)
            continue
        if level >= _LIST_NESTING:
            raise RenderError(
                f"{where}: the chart produced Lists nested more than {_LIST_NESTING} levels deep"
            )
        flat.extend(_flatten([item for item in items if item is not None], where, level + 1))
    return flat


def _scrub(text: str, workdir: Path) -> str:
    """Hide work-directory paths in a tool's message."""
    for base in {str(workdir.resolve()), str(workdir)}:
        text = text.replace(base, "<workdir>")
    return text.strip().removeprefix("Error: ")
