"""Flux units as Tidegate reads them: parsed specs and render results.

`KustomizationSpec` and `HelmReleaseSpec` are the fields of Flux's `kustomize.toolkit.fluxcd.io/v1`
Kustomization and `helm.toolkit.fluxcd.io/v2` HelmRelease that change what gets rendered or how it
is reconciled. Parsing validates them and names the file, object and field of any mistake.
`RenderedUnit` and `ClusterRender` are what discovery and rendering hand to planning.
Data and validation only: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from core.errors import Failure, InputError
from core.host.paths import flux_path
from core.model import (
    FLUX_HELM_GROUP,
    FLUX_KUSTOMIZE_GROUP,
    Manifest,
    ObjectRef,
    RawObject,
    UnitKind,
    UnitRef,
    group_of,
)

__all__ = [
    "CRD_POLICIES",
    "DEFAULT_CRD_POLICY",
    "ClusterRender",
    "HelmReleaseSpec",
    "KustomizationSpec",
    "RenderedUnit",
    "SourceRef",
    "SubstituteFrom",
    "ValuesFrom",
    "is_unit_object",
    "parse_unit",
    "source_path",
]

_DELETION_POLICIES = ("MirrorPrune", "Delete", "WaitForTermination", "Orphan")
CRD_POLICIES = ("Skip", "Create", "CreateReplace")
DEFAULT_CRD_POLICY = "Create"
"""helm-controller's `crdPolicyOrDefault`: an empty `install.crds` or `upgrade.crds` is Create
(create missing CRDs only). Its documentation says upgrades default to Skip; the code wins."""


@dataclass(frozen=True, order=True)
class SourceRef:
    """A Flux source reference (`GitRepository/flux-system/flux-system`)."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"


@dataclass(frozen=True)
class SubstituteFrom:
    """One `postBuild.substituteFrom` entry: a ConfigMap or Secret in the unit's namespace."""

    kind: str
    name: str
    optional: bool = False


@dataclass(frozen=True)
class ValuesFrom:
    """One HelmRelease `valuesFrom` entry."""

    kind: str
    name: str
    values_key: str = "values.yaml"
    target_path: str | None = None
    optional: bool = False


@dataclass(frozen=True)
class KustomizationSpec:
    """The rendering-relevant fields of a Flux Kustomization."""

    unit: UnitRef
    source: SourceRef
    path: str
    prune: bool
    suspend: bool = False
    deletion_policy: str = "MirrorPrune"
    target_namespace: str | None = None
    name_prefix: str | None = None
    name_suffix: str | None = None
    patches: tuple[RawObject, ...] = ()
    images: tuple[RawObject, ...] = ()
    components: tuple[str, ...] = ()
    ignore_missing_components: bool = False
    common_labels: Mapping[str, str] = field(default_factory=dict)
    common_annotations: Mapping[str, str] = field(default_factory=dict)
    substitute: Mapping[str, str] = field(default_factory=dict)
    substitute_from: tuple[SubstituteFrom, ...] = ()
    substitute_strategy: str = "WithVariables"
    """`Always` substitutes even when no variable resolved (strict mode flags each `${var}`)."""
    build_metadata: tuple[str, ...] = ()
    depends_on: tuple[UnitRef, ...] = ()
    decryption: bool = False
    file: str | None = None
    """Repository file that defines this Kustomization, for messages."""


@dataclass(frozen=True)
class HelmReleaseSpec:
    """The rendering-relevant fields of a Flux HelmRelease."""

    unit: UnitRef
    chart: str
    """Chart name in a HelmRepository, or path in a GitRepository."""
    source: SourceRef
    version: str | None = None
    release_name: str = ""
    target_namespace: str = ""
    values: RawObject = field(default_factory=dict)
    values_from: tuple[ValuesFrom, ...] = ()
    suspend: bool = False
    depends_on: tuple[UnitRef, ...] = ()
    post_renderers: tuple[RawObject, ...] = ()
    install_crds: str = DEFAULT_CRD_POLICY
    """How helm-controller applies the chart's `crds/` on install (`spec.install.crds`)."""
    upgrade_crds: str = DEFAULT_CRD_POLICY
    """... and on upgrade (`spec.upgrade.crds`)."""
    file: str | None = None
    chart_ref: SourceRef | None = None
    """`spec.chartRef` (an OCIRepository or HelmChart); then `source` is the same and `chart`
    is empty."""


_CHART_REF_KINDS = ("OCIRepository", "HelmChart", "ExternalArtifact")


@dataclass(frozen=True)
class RenderedUnit:
    """One unit rendered at one revision: its objects, or why it failed."""

    unit: UnitRef
    prune: bool
    """Whether objects removed from this unit are deleted (HelmReleases always uninstall them)."""
    objects: Mapping[ObjectRef, Manifest] | None
    """Rendered objects by identity; None when rendering failed."""
    error: str | None = None
    failure: Failure | None = None
    """Why rendering failed, as a type (None when it did not, or the cause is not known)."""
    parent: UnitRef | None = None
    suspend: bool = False
    deletion_policy: str = "MirrorPrune"
    path: str | None = None
    inputs: frozenset[str] = frozenset()
    """Repository files this render read: the ownership index is built from these."""
    install_crds: str = DEFAULT_CRD_POLICY
    """A HelmRelease's CRD policy on install, for the CRDs in `chart_crds`."""
    upgrade_crds: str = DEFAULT_CRD_POLICY
    """... and on upgrade."""
    chart_crds: frozenset[ObjectRef] = frozenset()
    """The CRDs a HelmRelease's chart has in `crds/`: helm-controller applies them by its CRD
    policy, not with the release, and never deletes them."""
    unavailable_source: str | None = None
    """When the render failed because a source could not be reached: its URL (no query)."""
    depends_on: tuple[UnitRef, ...] = ()
    source: SourceRef | None = None
    file: str | None = None
    """Repository file that defines the unit's Flux object."""
    render_key: str = field(default="", compare=False)
    """Where the render cache keeps these objects; empty when it does not (a failure)."""
    carry_key: str = field(default="", compare=False)
    """The key a preview's head takes this render from its base by (`core.render.carry`);
    empty when it cannot."""


@dataclass(frozen=True)
class ClusterRender:
    """Every unit of one cluster entry point at one revision."""

    path: str
    units: Mapping[UnitRef, RenderedUnit]
    errors: tuple[str, ...] = ()
    kept_key: str = field(default="", compare=False)
    """The key `core.render.clusters` keeps this cluster under at its revision; empty when it is
    not kept. A kept cluster's units all render from content the commit names."""
    source_urls: tuple[str, ...] | None = field(default=None, compare=False)
    """Every Flux source URL its units render, when known without reading them (a kept cluster);
    None when they must be read from the objects."""


def source_path(path: str) -> str:
    """Return a Kustomization `spec.path` as the artifact-relative path Flux builds ("" = root).

    kustomize-controller joins the path to the artifact root with `securejoin.SecureJoin`, so
    `/apps`, `./apps` and `apps` are the same directory, and `..` stops at the root instead of
    leaving it (`../../apps` is `apps`).
    """
    return flux_path(path)


def is_unit_object(obj: Mapping[str, Any]) -> bool:
    """Tell whether an object is a Flux Kustomization or HelmRelease."""
    group = group_of(str(obj.get("apiVersion", "")))
    kind = obj.get("kind")
    return (group == FLUX_KUSTOMIZE_GROUP and kind == "Kustomization") or (
        group == FLUX_HELM_GROUP and kind == "HelmRelease"
    )


def parse_unit(
    obj: Mapping[str, Any], *, file: str | None = None
) -> KustomizationSpec | HelmReleaseSpec:
    """Parse a Flux Kustomization or HelmRelease, naming the file, object and field of any error."""
    reader = _Reader(obj, file)
    if obj.get("kind") == "Kustomization":
        return reader.kustomization()
    return reader.helm_release()


class _Reader:
    """Typed access to one Flux object's fields, with precise errors."""

    def __init__(self, obj: Mapping[str, Any], file: str | None) -> None:
        self.obj = obj
        self.file = file
        meta = obj.get("metadata")
        meta = meta if isinstance(meta, Mapping) else {}
        self.name = str(meta.get("name") or "")
        # Flux objects without a namespace live in the namespace they are applied to; in a
        # repository that is almost always flux-system, as `flux bootstrap` writes them.
        self.namespace = str(meta.get("namespace") or "flux-system")
        self.label = f"{obj.get('kind')}/{self.namespace}/{self.name}"
        if not self.name:
            self.fail("metadata.name", "is required")

    def fail(self, path: str, message: str) -> NoReturn:
        raise InputError(message, file=self.file, obj=self.label, field=path)

    def get(self, path: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        node: Any = self.obj
        for part in path.split("."):
            if not isinstance(node, Mapping) or part not in node or node[part] is None:
                return default
            node = node[part]
        if not isinstance(node, kind) or (isinstance(node, bool) and bool not in _types(kind)):
            names = "/".join(t.__name__ for t in _types(kind))
            self.fail(path, f"must be a {names}, not {type(node).__name__}")
        return node

    def required(self, path: str, kind: type | tuple[type, ...]) -> Any:
        value = self.get(path, kind)
        if value is None:
            self.fail(path, "is required")
        return value

    def strings(self, path: str) -> Mapping[str, str]:
        values = self.get(path, Mapping, {})
        return {str(k): str(v) for k, v in values.items()}

    def dicts(self, path: str) -> tuple[RawObject, ...]:
        items = self.get(path, list, [])
        for index, item in enumerate(items):
            if not isinstance(item, Mapping):
                self.fail(f"{path}[{index}]", "must be a mapping")
        return tuple(dict(item) for item in items)

    def source(self, path: str, default_kind: str) -> SourceRef:
        ref = self.required(path, Mapping)
        kind = str(ref.get("kind") or default_kind)
        name = ref.get("name")
        if not name:
            self.fail(f"{path}.name", "is required")
        return SourceRef(kind, str(ref.get("namespace") or self.namespace), str(name))

    def depends_on(self, kind: UnitKind) -> tuple[UnitRef, ...]:
        refs = []
        for index, dep in enumerate(self.dicts("spec.dependsOn")):
            if not dep.get("name"):
                self.fail(f"spec.dependsOn[{index}].name", "is required")
            refs.append(
                UnitRef(kind, str(dep.get("namespace") or self.namespace), str(dep["name"]))
            )
        return tuple(refs)

    def kustomization(self) -> KustomizationSpec:
        unit = UnitRef(UnitKind.KUSTOMIZATION, self.namespace, self.name)
        prune = self.get("spec.prune", bool)
        if prune is None:
            self.fail("spec.prune", "is required")
        policy = self.get("spec.deletionPolicy", str, "MirrorPrune")
        if policy not in _DELETION_POLICIES:
            self.fail("spec.deletionPolicy", f"must be one of {', '.join(_DELETION_POLICIES)}")
        substitute_from = []
        for index, item in enumerate(self.dicts("spec.postBuild.substituteFrom")):
            kind, name = item.get("kind"), item.get("name")
            if kind not in ("ConfigMap", "Secret"):
                self.fail(
                    f"spec.postBuild.substituteFrom[{index}].kind", "must be ConfigMap or Secret"
                )
            if not name:
                self.fail(f"spec.postBuild.substituteFrom[{index}].name", "is required")
            substitute_from.append(SubstituteFrom(str(kind), str(name), bool(item.get("optional"))))
        strategy = self.get("spec.postBuild.substituteStrategy", str, "WithVariables")
        if strategy not in ("WithVariables", "Always"):
            self.fail("spec.postBuild.substituteStrategy", "must be WithVariables or Always")
        build_metadata = tuple(str(item) for item in self.get("spec.buildMetadata", list, []))
        for var in self.strings("spec.postBuild.substitute"):
            if not _VAR_NAME.match(var):
                self.fail(f"spec.postBuild.substitute.{var}", "is not a valid variable name")
        return KustomizationSpec(
            unit=unit,
            source=self.source("spec.sourceRef", "GitRepository"),
            path=self.get("spec.path", str, ""),
            prune=prune,
            suspend=bool(self.get("spec.suspend", bool, False)),
            deletion_policy=policy,
            target_namespace=self.get("spec.targetNamespace", str),
            name_prefix=self.get("spec.namePrefix", str),
            name_suffix=self.get("spec.nameSuffix", str),
            patches=self.dicts("spec.patches"),
            images=self.dicts("spec.images"),
            components=tuple(str(c) for c in self.get("spec.components", list, [])),
            ignore_missing_components=bool(self.get("spec.ignoreMissingComponents", bool, False)),
            common_labels=self.strings("spec.commonMetadata.labels"),
            common_annotations=self.strings("spec.commonMetadata.annotations"),
            substitute=self.strings("spec.postBuild.substitute"),
            substitute_from=tuple(substitute_from),
            substitute_strategy=strategy,
            build_metadata=build_metadata,
            depends_on=self.depends_on(UnitKind.KUSTOMIZATION),
            decryption=self.get("spec.decryption", Mapping) is not None,
            file=self.file,
        )

    def helm_release(self) -> HelmReleaseSpec:
        unit = UnitRef(UnitKind.HELM_RELEASE, self.namespace, self.name)
        chart_ref = None
        if self.get("spec.chartRef", Mapping) is not None:
            if self.get("spec.chart", Mapping) is not None:
                self.fail("spec.chartRef", "cannot be set together with spec.chart")
            kind = self.required("spec.chartRef.kind", str)
            if kind not in _CHART_REF_KINDS:
                self.fail("spec.chartRef.kind", f"must be one of {', '.join(_CHART_REF_KINDS)}")
            chart_ref = self.source("spec.chartRef", kind)
            chart = ""
        else:
            chart = self.required("spec.chart.spec.chart", str)
        target_namespace = self.get("spec.targetNamespace", str, "") or self.namespace
        release_name = self.get("spec.releaseName", str) or (
            f"{self.get('spec.targetNamespace', str)}-{self.name}"
            if self.get("spec.targetNamespace", str)
            else self.name
        )
        values_from = []
        for index, item in enumerate(self.dicts("spec.valuesFrom")):
            kind, name = item.get("kind"), item.get("name")
            if kind not in ("ConfigMap", "Secret"):
                self.fail(f"spec.valuesFrom[{index}].kind", "must be ConfigMap or Secret")
            if not name:
                self.fail(f"spec.valuesFrom[{index}].name", "is required")
            values_from.append(
                ValuesFrom(
                    kind=str(kind),
                    name=str(name),
                    values_key=str(item.get("valuesKey") or "values.yaml"),
                    target_path=item.get("targetPath"),
                    optional=bool(item.get("optional")),
                )
            )
        crds = {}
        for action in ("install", "upgrade"):
            policy = self.get(f"spec.{action}.crds", str, DEFAULT_CRD_POLICY)
            if policy not in CRD_POLICIES:
                self.fail(f"spec.{action}.crds", f"must be one of {', '.join(CRD_POLICIES)}")
            crds[action] = policy
        return HelmReleaseSpec(
            unit=unit,
            chart=chart,
            source=chart_ref or self.source("spec.chart.spec.sourceRef", "HelmRepository"),
            version=self.get("spec.chart.spec.version", str),
            release_name=release_name,
            target_namespace=target_namespace,
            values=dict(self.get("spec.values", Mapping, {})),
            values_from=tuple(values_from),
            suspend=bool(self.get("spec.suspend", bool, False)),
            depends_on=self.depends_on(UnitKind.HELM_RELEASE),
            post_renderers=self.dicts("spec.postRenderers"),
            install_crds=crds["install"],
            upgrade_crds=crds["upgrade"],
            file=self.file,
            chart_ref=chart_ref,
        )


_VAR_NAME = re.compile(r"^[_a-zA-Z][_a-zA-Z0-9]*$")


def _types(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)
