"""Render one Flux Kustomization the way kustomize-controller builds it.

Steps, in Flux's order: find the files the build reads (`core.render.walk`), copy exactly those
into a private work directory (the repository is never modified), generate kustomization.yaml when
the path has none and merge the Kustomization's spec into it (targetNamespace, namePrefix/Suffix,
patches, images, components), run `kustomize build` with root-only load restrictions and no
plugins, exec or helm, parse and check the objects, run postBuild substitution, and set Flux's
ownership labels and commonMetadata. The objects are returned in cleartext (`core.cleartext.Clear`)
with the paths of their Secret-derived values: the caller masks them at its one boundary, or
applies them. Every object records the repository file it came from (kustomize's origin
annotation, removed again unless the user asked for it).

Like kustomize-controller this module never invents a namespace: a built-in namespaced object that
ends up without one fails the render, as Flux's apply fails with "namespace not specified". It never
writes outside `workdir`, never shows `workdir` paths in messages and never quotes a Secret-derived
value in an error (messages name objects by their redacted view).
"""

from __future__ import annotations

import dataclasses
import posixpath
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import yamlio
from core.cleartext import Clear, SecretPaths
from core.errors import BudgetError, CommandError, InputError, RenderError
from core.host.command import DEFAULT_LIMITS, Limits, run
from core.host.files import FileSource
from core.host.paths import join, normalize
from core.host.sandbox import Sandbox, explain, from_setting
from core.model import ObjectRef, RawObject
from core.render.memo import BuildMemo, artifact_key
from core.render.memo import key as memo_key
from core.render.substitute import substitute_object
from core.render.walk import find_kustomization, generated_resources, kustomize_inputs
from core.scope import CLUSTER_SCOPED_KINDS, apply_scope, crd_scopes
from core.units import KustomizationSpec, source_path

__all__ = [
    "CLUSTER_SCOPED_KINDS",
    "LOAD_RESTRICTOR",
    "ORIGIN_ANNOTATION",
    "Rendered",
    "apply_scope",
    "build_root",
    "crd_scopes",
    "render_kustomization",
]

ORIGIN_ANNOTATION = "config.kubernetes.io/origin"
LOAD_RESTRICTOR = "LoadRestrictionsNone"
"""As Flux: a kustomization may read files outside its own directory (`../base/cm.yaml`).

Flux jails the build at the artifact root; here the jail is the work directory, which holds only
the repository files the input walk found, and the walk refuses absolute paths, paths that leave
the repository, remote bases and plugins before kustomize runs (the design's rule 5).
"""

_OWNER_NAME = "kustomize.toolkit.fluxcd.io/name"
_OWNER_NAMESPACE = "kustomize.toolkit.fluxcd.io/namespace"
_KUSTOMIZATION_API = "kustomize.config.k8s.io/v1beta1"


@dataclass(frozen=True)
class Rendered:
    """The objects of one Kustomization (cleartext) and the repository files that produced them."""

    objects: tuple[Clear, ...]
    inputs: frozenset[str]


def render_kustomization(
    spec: KustomizationSpec,
    source: FileSource,
    *,
    kustomize: Path,
    workdir: Path,
    variables: Mapping[str, str] | None,
    secret_variables: frozenset[str] = frozenset(),
    limits: Limits = DEFAULT_LIMITS,
    allowed_remotes: Collection[str] = (),
    sandbox: Sandbox | None = None,
    memo: BuildMemo | None = None,
    source_digest: str | None = None,
) -> Rendered:
    """Build a Flux Kustomization and return its cleartext objects and input files.

    Args:
        spec: The parsed Kustomization.
        source: The repository revision its sourceRef points at.
        kustomize: The kustomize binary.
        workdir: An empty private directory; files are copied here, never into `source`.
        variables: postBuild variables (inline and substituteFrom, merged); None means
            no substitution at all (Flux's default strategy WithVariables).
        secret_variables: Names in `variables` whose values came from Secrets.
        limits: Time and memory bound of the kustomize process.
        allowed_remotes: URL prefixes of remote bases that may be used.
        sandbox: Confines kustomize to the copied files; None means the operator's setting
            (`core.host.sandbox.from_setting`), which is the full sandbox by default.
        memo: kustomize's output for identical inputs, kept across builds (see
            `core.render.memo`); None runs kustomize every time.
        source_digest: A digest that names every file of `source` (an artifact's verified
            digest): with `memo`, the key is taken from it before any file is copied, and a hit
            copies nothing. None keys the build by the copied files themselves.

    Raises:
        RenderError: the build failed; the message names the Kustomization and the file.
        InputError: the repository content is invalid or not allowed.
        SandboxError: the sandbox asked for cannot be set up.
    """
    where = _where(spec)
    root, components = build_root(spec, source)
    inputs = kustomize_inputs(
        source, root, extra_components=components, allowed_remotes=allowed_remotes
    )
    prepared = _prepare(source, root, spec, components)
    jail = sandbox if sandbox is not None else from_setting(None)
    job = _Job(kustomize, workdir, root, limits, where, jail)
    output = _memoized_build(job, source, inputs, prepared, memo, source_digest)
    objects = _parse(output, root, where, prepared.keep_origin)
    return Rendered(_finish(objects, spec, variables, secret_variables, where), inputs)


def build_root(spec: KustomizationSpec, source: FileSource) -> tuple[str, tuple[str, ...]]:
    """Return the directory a Kustomization builds and the spec components that apply.

    The input walk of this directory with these components is exactly what the build reads.

    Raises:
        RenderError: the path is not a repository path, or not a directory.
        InputError: a component path is not a repository path.
    """
    where = _where(spec)
    try:
        # Flux joins spec.path with securejoin: `/apps` is the root's apps, `..` stops there.
        root = normalize(source_path(spec.path))
    except InputError as exc:
        raise RenderError(f"{where}: {exc}") from exc
    if not source.is_dir(root):
        raise RenderError(f"{where}: kustomization path not found: {spec.path}")
    return root, _components(spec, source, root)


def _where(spec: KustomizationSpec) -> str:
    return f"{spec.unit} (file {spec.file})" if spec.file else str(spec.unit)


def _components(spec: KustomizationSpec, source: FileSource, root: str) -> tuple[str, ...]:
    """The spec's components that exist (missing ones fail in kustomize unless ignored)."""
    kept = []
    for index, component in enumerate(spec.components):
        path = join(root, component, file=spec.file, field=f"spec.components[{index}]")
        if source.is_dir(path) or not spec.ignore_missing_components:
            kept.append(component)
    return tuple(kept)


def _materialize(source: FileSource, inputs: Iterable[str], tree: Path, root: str) -> None:
    """Copy the input files into `tree`, keeping their repository layout."""
    (tree / root).mkdir(parents=True, exist_ok=True)
    for path in sorted(inputs):
        if not source.is_file(path):
            continue  # referenced but missing: kustomize reports it
        target = tree / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read(path))


@dataclass(frozen=True)
class _Prepared:
    """The kustomization file Flux would build, and whether the user wants origins kept."""

    path: str
    """Its repository path (it replaces the repository's own kustomization file, if any)."""
    content: bytes
    keep_origin: bool


def _prepare(
    source: FileSource, root: str, spec: KustomizationSpec, components: tuple[str, ...]
) -> _Prepared:
    """The kustomization file Flux would build: the repository's or a generated one, merged."""
    kfile = find_kustomization(source, root)
    if kfile is None:
        doc: dict[str, Any] = _generate(source, root)
        name = "kustomization.yaml"
    else:
        loaded = yamlio.load(source.read(kfile)) or {}
        doc = dict(loaded)
        name = posixpath.basename(kfile)
    # Flux sets spec.buildMetadata in the kustomization, over whatever the file says.
    build_metadata = list(spec.build_metadata or doc.get("buildMetadata") or [])
    keep_origin = "originAnnotations" in build_metadata
    _merge_spec(doc, spec, components)
    if not keep_origin:
        build_metadata.append("originAnnotations")
    doc["buildMetadata"] = build_metadata
    content = yamlio.dump(doc, sort_keys=False).encode()
    return _Prepared(posixpath.join(root, name), content, keep_origin)


def _generate(source: FileSource, root: str) -> dict[str, Any]:
    """Flux's generated kustomization: every Kubernetes YAML file, nested kustomizations."""
    resources = []
    for path in generated_resources(source, root):
        if source.is_file(path):
            _check_kubernetes_yaml(source, path)
        resources.append(posixpath.relpath(path, root or "."))
    return {"apiVersion": _KUSTOMIZATION_API, "kind": "Kustomization", "resources": resources}


def _check_kubernetes_yaml(source: FileSource, path: str) -> None:
    """Refuse a file Flux's generator cannot decode as Kubernetes objects."""
    problem = ""
    try:
        docs = list(yamlio.load_all(source.read(path)))
    except yamlio.YAMLError:
        problem = "invalid YAML"
        docs = []
    except BudgetError as exc:
        raise exc.at(path) from None
    for doc in docs:
        if doc is None:
            continue
        if not isinstance(doc, dict):
            problem = "a document is not a mapping"
        elif not doc.get("apiVersion") or not doc.get("kind"):
            problem = "a document has no apiVersion or kind"
    if problem:
        raise RenderError(f"failed to decode Kubernetes YAML from {path}: {problem}")


def _merge_spec(doc: dict[str, Any], spec: KustomizationSpec, components: Iterable[str]) -> None:
    """Merge the Kustomization's spec into a kustomization file as Flux's generator does."""
    if spec.target_namespace:
        doc["namespace"] = spec.target_namespace
    if spec.name_prefix:
        doc["namePrefix"] = spec.name_prefix
    if spec.name_suffix:
        doc["nameSuffix"] = spec.name_suffix
    if spec.patches:
        patches = list(doc.get("patches") or [])
        for patch in spec.patches:
            item = {"patch": patch.get("patch", "")}
            if patch.get("target"):
                item["target"] = patch["target"]
            patches.append(item)
        doc["patches"] = patches
    if spec.images:
        images = list(doc.get("images") or [])
        for image in spec.images:
            # Flux replaces an entry of the same name wholesale; fields only in the file are lost.
            new = {k: image[k] for k in ("name", "newName", "newTag", "digest") if image.get(k)}
            names = [item.get("name") if isinstance(item, dict) else None for item in images]
            if image.get("name") in names:
                images[names.index(image.get("name"))] = new
            else:
                images.append(new)
        doc["images"] = images
    if components:
        doc["components"] = [*(doc.get("components") or []), *components]


@dataclass(frozen=True)
class _Job:
    """One kustomize run: the binary, the private work directory and how to run it."""

    kustomize: Path
    workdir: Path
    root: str
    limits: Limits
    where: str
    sandbox: Sandbox

    @property
    def tree(self) -> Path:
        """Where the files kustomize reads are copied."""
        return self.workdir / "repo"

    @property
    def argv(self) -> list[str]:
        """The arguments kustomize gets, the build directory as a repository path (for keys)."""
        return ["build", self.root, "--load-restrictor", LOAD_RESTRICTOR]


def _memoized_build(
    job: _Job,
    source: FileSource,
    inputs: Collection[str],
    prepared: _Prepared,
    memo: BuildMemo | None,
    source_digest: str | None,
) -> bytes:
    """Copy the inputs and run kustomize, unless `memo` already holds exactly this build.

    With `source_digest` the key comes from it, the input paths and the prepared kustomization
    (together they fix every byte of the copied tree), so a hit copies nothing and hashes no
    file. Without it the key hashes the copied tree.
    """
    digest = None
    if memo is not None and source_digest is not None:
        written = {prepared.path: prepared.content}
        digest = artifact_key(job.kustomize, job.argv, source_digest, inputs, written)
        found = memo.get(digest)
        if found is not None:
            return found
    _materialize(source, inputs, job.tree, job.root)
    (job.tree / prepared.path).write_bytes(prepared.content)
    if memo is not None and digest is None:
        # The tree's own location is private and new each time: the key names files by their
        # repository paths.
        digest = memo_key(job.kustomize, job.argv, job.tree)
        found = memo.get(digest)
        if found is not None:
            return found
    output = _build(job)
    if memo is not None and digest is not None:
        memo.put(digest, output)
    return output


def _build(job: _Job) -> bytes:
    """Run `kustomize build` without plugins, exec or helm, in the sandbox; translate failures.

    kustomize may read only the copied tree and write only its scratch home: Flux's
    LoadRestrictionsNone is safe only inside such a jail.
    """
    kustomize, tree, root, workdir = job.kustomize, job.tree, job.root, job.workdir
    limits, where, sandbox = job.limits, job.where, job.sandbox
    home = workdir / "home"
    home.mkdir(exist_ok=True)
    env = {
        **limits.env,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "TMPDIR": str(home),
    }
    bounded = dataclasses.replace(limits, env=env)
    argv = [str(kustomize), "build", str(tree / root), "--load-restrictor", LOAD_RESTRICTOR]
    confine = sandbox.confine(read=[tree], write=[home])
    try:
        return run(argv, cwd=tree, limits=bounded, confine=confine)
    except CommandError as exc:
        if _generates_secrets(tree):
            # kustomize quotes generator input in its errors (`invalid literal source <value>`),
            # and nothing here knows which part of it is a Secret value: withhold it all.
            raise RenderError(
                f"{where}: kustomize build failed; its message is withheld because this build"
                " generates Secrets and kustomize may quote their values"
            ) from None
        message = _scrub(exc.stderr or str(exc), tree, workdir).removeprefix("Error: ")
        raise RenderError(f"{where}: kustomize build failed: {explain(message, confine)}") from None


def _generates_secrets(tree: Path) -> bool:
    """Tell whether a file copied for this build configures a Secret generator.

    Kustomization files (`secretGenerator:`) and generator configs (`kind: SecretGenerator`)
    are both among the copied inputs, so one search of their bytes finds either.
    """
    return any(b"ecretGenerator" in path.read_bytes() for path in tree.rglob("*") if path.is_file())


def _scrub(text: str, tree: Path, workdir: Path) -> str:
    """Replace work-directory paths by repository paths in a tool's message."""
    for base in {str(tree.resolve()), str(tree)}:
        text = text.replace(base + "/", "").replace(base, ".")
    for base in {str(workdir.resolve()), str(workdir)}:
        text = text.replace(base, "<workdir>")
    return text


def _origin(obj: RawObject, root: str, keep: bool) -> str | None:
    """Return the repository file an object came from; drop the annotation unless kept."""
    meta = obj.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    raw = annotations.get(ORIGIN_ANNOTATION)
    if raw is None:
        return None
    if not keep:
        del annotations[ORIGIN_ANNOTATION]
        if not annotations:
            del meta["annotations"]
    try:
        origin = yamlio.load(raw)
    except yamlio.YAMLError:
        return None
    if not isinstance(origin, dict):
        return None
    if origin.get("repo"):
        return str(origin["repo"])
    rel = origin.get("path") or origin.get("configuredIn")
    if not rel:
        return None
    try:
        return join(root, str(rel))
    except InputError:
        return None  # not a repository file: the object is attributed to the root


def _parse(output: bytes, root: str, where: str, keep_origin: bool) -> list[tuple[RawObject, str]]:
    """Parse kustomize's output into objects, each with the repository file it came from."""
    try:
        docs = [d for d in yamlio.load_all(output) if d is not None]
    except yamlio.YAMLError as exc:
        raise RenderError(f"{where}: kustomize output is not valid YAML") from exc
    except BudgetError as exc:
        raise exc.at(f"{where}: the output of kustomize build") from None
    parsed: list[tuple[RawObject, str]] = []
    for doc in docs:
        if not isinstance(doc, dict):
            raise RenderError(f"{where}: kustomize produced a document that is not an object")
        origin = _origin(doc, root, keep_origin) or root or "."
        _check_identity(doc, origin, where)
        parsed.append((doc, origin))
    return parsed


def _check_identity(obj: RawObject, origin: str, where: str) -> None:
    """Refuse an object without apiVersion, kind or metadata.name, naming its file."""
    meta = obj.get("metadata")
    if not obj.get("apiVersion") or not obj.get("kind"):
        raise RenderError(f"{where}: an object in {origin} has no apiVersion or kind")
    if not isinstance(meta, dict) or not meta.get("name"):
        raise RenderError(f"{where}: {obj['kind']} in {origin} has no metadata.name")


def _check_unique(objects: Iterable[Clear], where: str) -> None:
    """Refuse two objects with the same identity, naming both files (and the redacted name)."""
    seen: dict[ObjectRef, str | None] = {}
    for obj in objects:
        ref = ObjectRef.of(obj.body)
        if ref in seen:
            shown = ObjectRef.of(obj.redacted())
            raise RenderError(
                f"{where}: {shown} is defined twice, in {seen[ref]} and in {obj.source}"
            )
        seen[ref] = obj.source


def _finish(
    objects: list[tuple[RawObject, str]],
    spec: KustomizationSpec,
    variables: Mapping[str, str] | None,
    secret_variables: frozenset[str],
    where: str,
) -> tuple[Clear, ...]:
    """Substitute, check, set scope, ownership and commonMetadata: what Flux applies."""
    done: list[Clear] = []
    for raw, origin in objects:
        body, paths = raw, SecretPaths()
        if variables is not None:
            body, paths = substitute_object(
                raw, variables, secret_variables=secret_variables, source=origin
            )
            _check_identity(body, origin, where)
        done.append(Clear(body, origin, paths))
    scopes = crd_scopes(clear.body for clear in done)
    for clear in done:
        if apply_scope(clear.body, scopes, default_namespace=None):
            # Say it from the redacted view: the name may be made from a Secret value.
            problem = apply_scope(clear.redacted(), scopes, default_namespace=None)
            raise RenderError(f"{where}: {problem} (in {clear.source})")
    _check_unique(done, where)
    for clear in done:
        _own(clear.body, spec)
    return tuple(done)


def _own(obj: RawObject, spec: KustomizationSpec) -> None:
    """Set Flux's ownership labels and commonMetadata (which wins)."""
    meta = obj["metadata"]
    meta["labels"] = {
        **(meta.get("labels") or {}),
        _OWNER_NAME: spec.unit.name,
        _OWNER_NAMESPACE: spec.unit.namespace,
        **spec.common_labels,
    }
    if spec.common_annotations:
        meta["annotations"] = {**(meta.get("annotations") or {}), **spec.common_annotations}
