"""Discovery of a cluster's Flux units, the way Flux itself reaches them.

A cluster entry point (`clusters/production`) is built like the Kustomization that `flux
bootstrap` points at it; every Flux Kustomization or HelmRelease among the rendered objects is a
unit of its own, rendered in turn, breadth first, until no new units appear. Rendering is injected
(`RenderUnit`), so this module decides only *what* to render and in which order: it holds the
rules for the root unit, for duplicates, for substitution sources that a sibling produces, and for
`dependsOn` cycles. It performs no I/O of its own.

It also holds the budgets on the shape of a cluster, because a hostile repository can make
discovery itself endless: a unit nested deeper than the depth budget, a unit over the revision's
unit budget, and a unit that renders the same source and path as one of its ancestors (a
Kustomization rendering a renamed copy of itself) each fail on their own, with a message naming
the cause, instead of being rendered. (A unit whose name the API server would refuse fails its
parent already: the renderer checks every object's name.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from core.budgets import Budgets
from core.errors import BudgetError, Failure, InputError
from core.host.paths import flux_path
from core.model import (
    FLUX_HELM_GROUP,
    FLUX_KUSTOMIZE_GROUP,
    Manifest,
    ObjectRef,
    UnitKind,
    UnitRef,
)
from core.units import (
    ClusterRender,
    HelmReleaseSpec,
    KustomizationSpec,
    RenderedUnit,
    SourceRef,
    parse_unit,
    source_path,
)

__all__ = [
    "CLUSTERS_DIR",
    "Pending",
    "RenderUnit",
    "SpecCache",
    "UnitAllowance",
    "UnitSpec",
    "discover_cluster",
    "find_cluster_paths",
]

CLUSTERS_DIR = "clusters"
_UNIT_KINDS = frozenset({(FLUX_KUSTOMIZE_GROUP, "Kustomization"), (FLUX_HELM_GROUP, "HelmRelease")})
_ROOT_NAMESPACE = "flux-system"

UnitSpec = KustomizationSpec | HelmReleaseSpec


@dataclass(frozen=True)
class Pending:
    """Returned by a renderer when a unit needs an object no unit has rendered yet.

    Discovery retries the unit once its siblings are rendered, and fails it only when no further
    progress is possible; `what` names the missing object for that final message.
    """

    what: str
    message: str | None = None
    """The whole message when it never appears, if better than "`what` was not found"."""


class UnitAllowance:
    """How many more units a revision may render, shared by all its clusters."""

    def __init__(self, budgets: Budgets) -> None:
        self.budgets = budgets
        self.used = 0

    def take(self, wanted: int) -> int:
        """Reserve up to `wanted` units; return how many were granted."""
        granted = max(0, min(wanted, self.budgets.max_units - self.used))
        self.used += granted
        return granted

    def error(self) -> BudgetError:
        """The reason a unit over the budget fails."""
        return BudgetError(
            f"the revision has more than {self.budgets.max_units} Flux units",
            flag="--max-units",
        )


class _Rendered(Mapping[ObjectRef, Manifest]):
    """Objects rendered so far in a cluster, found through the unit that rendered each.

    Only identities are indexed: a body is fetched from its unit's objects when a renderer looks it
    up, so units whose bodies nobody reads are never loaded from the render cache.
    """

    def __init__(self) -> None:
        self._owners: dict[ObjectRef, Mapping[ObjectRef, Manifest]] = {}

    def add(self, objects: Mapping[ObjectRef, Manifest]) -> None:
        """Index a unit's objects; the first unit to render an object keeps it."""
        for ref in objects:
            self._owners.setdefault(ref, objects)

    def clear(self) -> None:
        """Forget everything (the root was rendered again under its real spec)."""
        self._owners.clear()

    def __getitem__(self, ref: ObjectRef) -> Manifest:
        return self._owners[ref][ref]

    def __iter__(self) -> Iterator[ObjectRef]:
        return iter(self._owners)

    def __len__(self) -> int:
        return len(self._owners)

    def __contains__(self, ref: object) -> bool:
        return ref in self._owners


@dataclass
class _Context:
    """What a renderer may look up: objects rendered so far in this cluster."""

    objects: _Rendered = field(default_factory=_Rendered)
    self_source: SourceRef | None = None


RenderUnit = Callable[
    [Sequence[UnitSpec], Mapping[ObjectRef, Manifest], SourceRef | None],
    Sequence[RenderedUnit | Pending],
]
"""Render a batch of units (in parallel) given the objects rendered so far and the source that
means "this repository"; return, per unit and in order, its result or `Pending`."""


def find_cluster_paths(
    listdir: Callable[[str], Sequence[str]], has_flux: Callable[[str], bool]
) -> list[str]:
    """Return every directory under `clusters/` that holds Flux Kustomizations."""
    return [
        f"{CLUSTERS_DIR}/{name}"
        for name in listdir(CLUSTERS_DIR)
        if has_flux(f"{CLUSTERS_DIR}/{name}")
    ]


def root_spec(path: str) -> KustomizationSpec:
    """Return the stand-in for the Kustomization that reconciles an entry point.

    `flux bootstrap` names it flux-system; until the render shows the real one, it is assumed to
    prune, as bootstrap writes it.
    """
    return KustomizationSpec(
        unit=UnitRef(UnitKind.KUSTOMIZATION, _ROOT_NAMESPACE, _ROOT_NAMESPACE),
        source=SourceRef("GitRepository", _ROOT_NAMESPACE, _ROOT_NAMESPACE),
        path=path,
        prune=True,
    )


class SpecCache:
    """Parsed unit specs by rendered object.

    Base and head share the objects of every unit whose render did not change (the render cache
    hands both the same objects), so with one cache per preview each spec is parsed once. A
    long-lived process keeps one across previews (`limit` bounds it): its warm render cache
    hands every preview the same objects again.
    """

    def __init__(self, limit: int | None = None) -> None:
        """`limit`: entries kept at most; past it the cache starts over (None: no bound)."""
        self._parsed: dict[int, tuple[Manifest, UnitSpec | InputError]] = {}
        self._limit = limit
        self.parsed = 0
        """Objects parsed, not found (for tests)."""

    def parse(self, manifest: Manifest) -> UnitSpec:
        """Return the spec of a Flux object; raise `InputError` if it is invalid."""
        entry = self._parsed.get(id(manifest))
        if entry is None:
            try:
                result: UnitSpec | InputError = parse_unit(manifest.body, file=manifest.source)
            except InputError as exc:
                result = exc
            self.parsed += 1
            if self._limit is not None and len(self._parsed) >= self._limit:
                self._parsed.clear()
            # The manifest is kept alongside, so its id cannot be reused while cached.
            entry = self._parsed[id(manifest)] = (manifest, result)
        if isinstance(entry[1], InputError):
            raise entry[1]
        return entry[1]


def discover_cluster(
    path: str,
    render: RenderUnit,
    specs: SpecCache | None = None,
    *,
    allowance: UnitAllowance | None = None,
) -> ClusterRender:
    """Render every unit reachable from one cluster entry point, within the unit budgets."""
    walker = _Walker(path, render, specs or SpecCache(), allowance or UnitAllowance(Budgets()))
    return walker.run()


class _Walker:
    """One breadth-first discovery of a cluster."""

    def __init__(
        self, path: str, render: RenderUnit, specs: SpecCache, allowance: UnitAllowance
    ) -> None:
        self.path = flux_path(path)
        self.render = render
        self.parsed = specs
        self.allowance = allowance
        self.context = _Context()
        self.units: dict[UnitRef, RenderedUnit] = {}
        self.specs: dict[UnitRef, UnitSpec] = {}
        self.errors: list[str] = []

    def run(self) -> ClusterRender:
        root = self._render_root()
        if root is None:
            return ClusterRender(self.path, dict(self.units), tuple(self.errors))
        queue = self._children(root)
        depth = 1
        while queue:
            if depth > self.allowance.budgets.max_depth:
                self._fail_all(queue, self._too_deep(depth), Failure.BUDGET)
                break
            queue = self._render_level(queue)
            depth += 1
        self.errors.extend(_cycles(self.specs))
        return ClusterRender(self.path, dict(sorted(self.units.items())), tuple(self.errors))

    def _render_root(self) -> RenderedUnit | None:
        """Render the entry point, then again as the real root Kustomization if it names one."""
        provisional = root_spec(self.path)
        first = self._render_one(provisional, None)
        if first is None or first.objects is None:
            return first
        real = self._self_reference(first.objects.values())
        if real is None or _same_build(real, provisional):
            return first
        self.units.pop(provisional.unit, None)
        self.specs.pop(provisional.unit, None)
        self.context.objects.clear()
        return self._render_one(real, None)

    def _self_reference(self, manifests: Iterable[Manifest]) -> KustomizationSpec | None:
        """Find the Kustomization that reconciles the entry point itself."""
        for manifest in manifests:
            if manifest.ref.group != FLUX_KUSTOMIZE_GROUP or manifest.ref.kind != "Kustomization":
                continue
            try:
                spec = self.parsed.parse(manifest)
            except InputError:
                continue
            if isinstance(spec, KustomizationSpec) and _path_of(spec) == self.path:
                return spec
        return None

    def _render_one(self, spec: UnitSpec, parent: UnitRef | None) -> RenderedUnit | None:
        if isinstance(spec, KustomizationSpec):
            # The root's source is what "this repository" means to every unit below it.
            self.context.self_source = spec.source
        result = self.render([spec], self.context.objects, self._source())[0]
        if isinstance(result, Pending):
            result = _failed(spec, parent, self._never_found(result), Failure.DEPENDENCY)
        self._record(spec, replace(result, parent=parent))
        return self.units[spec.unit]

    def _never_found(self, pending: Pending) -> str:
        """Say why a needed object never appeared, without blaming the wrong unit.

        When a unit of the cluster failed to render, its objects are unknown: the missing object
        may well be one of them, so the message says that instead of "not found".
        """
        failed = sorted(ref for ref, unit in self.units.items() if unit.objects is None)
        if failed:
            names = ", ".join(map(str, failed))
            verb = "fails" if len(failed) == 1 else "fail"
            return f"{pending.what} is unknown: {names} {verb} to render and may define it"
        return pending.message or f"{pending.what} was not found"

    def _source(self) -> SourceRef | None:
        return self.context.self_source

    def _record(self, spec: UnitSpec, result: RenderedUnit) -> None:
        # The spec's graph facts travel with the render, for the owner graph policies read.
        result = replace(
            result, depends_on=spec.depends_on, source=spec.source, file=spec.file or result.file
        )
        self.units[spec.unit] = result
        self.specs[spec.unit] = spec
        self.context.objects.add(result.objects or {})

    def _children(self, unit: RenderedUnit) -> list[tuple[UnitSpec, UnitRef]]:
        """Parse the Flux units a rendered unit creates; bad specs fail as units of their own."""
        found: list[tuple[UnitSpec, UnitRef]] = []
        seen: set[UnitRef] = set()
        objects = unit.objects or {}
        for manifest in [objects[ref] for ref in sorted(objects) if _is_unit_ref(ref)]:
            try:
                spec = self.parsed.parse(manifest)
            except InputError as exc:
                ref = _unit_ref_of(manifest)
                self._record_failure(ref, unit.unit, str(exc))
                continue
            if spec.unit == unit.unit or self._is_root(spec):
                continue
            problem = self._replicates(spec, unit.unit)
            if problem:
                self._record_failure(spec.unit, unit.unit, _defined_in(problem, spec))
                continue
            if spec.unit in self.specs or spec.unit in seen:
                self.errors.append(
                    f"{spec.unit} is defined twice (in {spec.file or 'unknown file'}); "
                    "Flux would apply only one of them"
                )
                continue
            found.append((spec, unit.unit))
            seen.add(spec.unit)
        return found

    def _is_root(self, spec: UnitSpec) -> bool:
        return isinstance(spec, KustomizationSpec) and _path_of(spec) == self.path

    def _replicates(self, spec: UnitSpec, parent: UnitRef) -> str | None:
        """Name the ancestor that already renders this unit's source and path, if one does.

        Such a unit renders itself again on every level (with a new name each time, once a
        prefix or a substituted name is involved), so discovery would never end.
        """
        build = _build_of(spec)
        ancestor: UnitRef | None = parent
        while ancestor is not None:
            known = self.specs.get(ancestor)
            if known is not None and _build_of(known) == build:
                return (
                    f"{spec.unit} renders {build[1] or '.'} of {build[0]}, which its ancestor "
                    f"{ancestor} already renders: a unit that renders a copy of itself never "
                    "ends, so it is not rendered"
                )
            above = self.units.get(ancestor)
            ancestor = above.parent if above is not None else None
        return None

    def _too_deep(self, depth: int) -> str:
        return str(
            BudgetError(
                f"it is nested {depth} levels below the cluster entry point, more than the "
                f"depth budget of {self.allowance.budgets.max_depth}",
                flag="--max-depth",
            )
        )

    def _fail_all(
        self, queue: Sequence[tuple[UnitSpec, UnitRef]], reason: str, failure: Failure
    ) -> None:
        for spec, parent in queue:
            self._record(spec, _failed(spec, parent, f"{spec.unit}: {reason}", failure))

    def _record_failure(self, ref: UnitRef, parent: UnitRef, error: str) -> None:
        """Record a unit whose Flux object is invalid (it was never rendered)."""
        self.units[ref] = RenderedUnit(
            unit=ref, prune=True, objects=None, error=error, failure=Failure.INPUT, parent=parent
        )

    def _render_level(
        self, queue: list[tuple[UnitSpec, UnitRef]]
    ) -> list[tuple[UnitSpec, UnitRef]]:
        """Render one level; retry units waiting on a sibling's objects while progress is made."""
        granted = self.allowance.take(len(queue))
        if granted < len(queue):
            self._fail_all(queue[granted:], str(self.allowance.error()), Failure.BUDGET)
        waiting = queue[:granted]
        children: list[tuple[UnitSpec, UnitRef]] = []
        while waiting:
            results = self.render([s for s, _ in waiting], self.context.objects, self._source())
            still = [
                (s, p) for (s, p), r in zip(waiting, results, strict=True) if isinstance(r, Pending)
            ]
            for (spec, parent), result in zip(waiting, results, strict=True):
                if isinstance(result, RenderedUnit):
                    rendered = replace(result, parent=parent)
                    self._record(spec, rendered)
                    children.extend(self._children(rendered))
            if len(still) == len(waiting):
                # Nothing rendered this round: what the rest waits for will never appear. The
                # messages are decided first, so no unit is blamed on another that only waited.
                stuck = [
                    (spec, parent, self._never_found(result))
                    for (spec, parent), result in zip(waiting, results, strict=True)
                    if isinstance(result, Pending)
                ]
                for spec, parent, message in stuck:
                    self._record(spec, _failed(spec, parent, message, Failure.DEPENDENCY))
                break
            waiting = still
        return children


def _is_unit_ref(ref: ObjectRef) -> bool:
    """Tell from its identity whether an object is a Flux Kustomization or HelmRelease."""
    return (ref.group, ref.kind) in _UNIT_KINDS


def _path_of(spec: KustomizationSpec) -> str:
    """The path a Kustomization builds, as Flux joins it to the artifact root."""
    return source_path(spec.path)


def _build_of(spec: UnitSpec) -> tuple[SourceRef, str]:
    """What a unit renders: its source and path (or chart), for the self-replication check."""
    if isinstance(spec, KustomizationSpec):
        return (spec.source, _path_of(spec))
    return (spec.source, spec.chart)


def _defined_in(message: str, spec: UnitSpec) -> str:
    return f"{message} (defined in {spec.file})" if spec.file else message


def _same_build(a: KustomizationSpec, b: KustomizationSpec) -> bool:
    """Tell whether two specs render the same, however their paths are spelled."""
    return replace(a, path=source_path(a.path), file=None) == replace(
        b, path=source_path(b.path), file=None
    )


def _failed(spec: UnitSpec, parent: UnitRef | None, error: str, failure: Failure) -> RenderedUnit:
    prune = spec.prune if isinstance(spec, KustomizationSpec) else True
    where = f" (defined in {spec.file})" if spec.file else ""
    return RenderedUnit(
        unit=spec.unit,
        prune=prune,
        objects=None,
        error=f"{error}{where}",
        failure=failure,
        parent=parent,
    )


def _unit_ref_of(manifest: Manifest) -> UnitRef:
    meta: Any = manifest.body.get("metadata") or {}
    return UnitRef(
        UnitKind(manifest.ref.kind),
        str(meta.get("namespace") or _ROOT_NAMESPACE),
        manifest.ref.name,
    )


def _cycles(specs: Mapping[UnitRef, UnitSpec]) -> list[str]:
    """Describe every `dependsOn` cycle, which Flux would wait on forever without saying so."""
    graph = {ref: [dep for dep in spec.depends_on if dep in specs] for ref, spec in specs.items()}
    messages: list[str] = []
    seen: set[frozenset[UnitRef]] = set()
    for start in sorted(graph):
        cycle = _find_cycle(start, graph)
        if cycle and frozenset(cycle) not in seen:
            seen.add(frozenset(cycle))
            chain = " -> ".join(f"{ref.namespace}/{ref.name}" for ref in [*cycle, cycle[0]])
            files = sorted({file for ref in cycle if (file := specs[ref].file)})
            where = f" (defined in {', '.join(files)})" if files else ""
            messages.append(f"dependsOn cycle: {chain}{where}; Flux would wait forever")
    return messages


def _find_cycle(start: UnitRef, graph: Mapping[UnitRef, list[UnitRef]]) -> list[UnitRef] | None:
    """Return a cycle through `start`, if one exists (depth-first, iterative)."""
    stack: list[tuple[UnitRef, list[UnitRef]]] = [(start, [start])]
    visited: set[UnitRef] = set()
    while stack:
        node, trail = stack.pop()
        for dep in graph.get(node, []):
            if dep == start:
                return trail
            if dep not in visited:
                visited.add(dep)
                stack.append((dep, [*trail, dep]))
    return None
