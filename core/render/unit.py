"""Render Flux units for discovery: resolve sources and variables, use the cache, run in parallel.

`UnitRenderer` is the `RenderUnit` that `core.repo.discovery` calls with a batch of unit specs and
the objects rendered so far in the cluster. For each spec it resolves the source (this repository,
or a directory given for another source), the `postBuild` variables or `valuesFrom` documents from
objects already rendered (returning `Pending` while they do not exist yet), and then either reuses
a cached render or renders with kustomize or helm in a worker thread. Any error, ours or not,
becomes a failed unit with a one-line message naming the file and object: failures are data,
never exceptions.

Budgets apply here: no render starts after the preview's deadline, every tool's time bound is cut
to what is left of it, and a render whose objects the API server would refuse by name, or whose
name or namespace derives from a Secret value, fails instead of being shown. Error messages are
scrubbed of every Secret value known to the preview before they leave this module.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from core import names, secrets, yamlio
from core.budgets import Budgets, Deadline
from core.cleartext import Clear
from core.errors import Failure, InputError, TidegateError
from core.fetch import FetchError, FetchPolicy, parse_url
from core.host import command, workspace
from core.host.command import DEFAULT_LIMITS, Limits
from core.host.files import DirectorySource, FileSource
from core.host.sandbox import Sandbox
from core.host.usage import mark_used
from core.model import FLUX_SOURCE_GROUP, Manifest, ObjectRef
from core.oci.registry import OCIError
from core.render import affected, helm, kustomize, ocisource, tool_identity
from core.render.affected import Selection
from core.render.cache import CachedRender, RenderCache, TreeView, canonical_key
from core.render.carry import Carry
from core.render.leaks import secret_values
from core.render.walk import kustomize_inputs
from core.repo.artifacts import Artifacts
from core.repo.discovery import Pending, UnitSpec
from core.repo.generator import GENERATOR_GROUP, GENERATOR_KIND, GeneratorSpec, parse_generator
from core.repo.view import FileView
from core.sources.helmrepo import ChartPuller, SourceUnavailableError
from core.units import (
    DEFAULT_CRD_POLICY,
    HelmReleaseSpec,
    KustomizationSpec,
    RenderedUnit,
    SourceRef,
    source_path,
)

__all__ = ["RenderObserver", "RenderOptions", "RenderSettings", "UnitRenderer"]

# Up to this many changed files, a head's renders start with the units they are in.
_GUESS_LIMIT = 64
# Seconds the preparation of a level waits for its first touched render's tool to start.
_UNDER_WAY_WAIT = 0.2


@dataclass(frozen=True)
class RenderOptions:
    """How units are rendered: the operator's choices, fixed for a process.

    The same for base and head and for every preview a long-lived service runs. Holds no state;
    a preview derives its own with `RenderSettings.with_options` (the head's narrower fetch
    policy, its work directory).
    """

    kustomize: Path
    helm: Path
    jobs: int = 2
    sources: Mapping[SourceRef, Path] = field(default_factory=dict)
    """Directories standing in for sources other than this repository (`--source`)."""
    limits: Limits = DEFAULT_LIMITS
    kube_version: str = "1.33"
    allowed_remotes: tuple[str, ...] = ()
    """URL prefixes of remote kustomize bases that may be used (none by default). Their content
    is not in the repository, so pin them (`?ref=v1.2.3`): renders are cached by URL."""
    fetch_policy: FetchPolicy = field(default_factory=FetchPolicy)
    """Where sources may be downloaded from: the preview widens it for the trusted base."""
    work_root: Path | None = None
    """Where work directories go (a preview's `Workspace`); None means the temporary directory."""
    budgets: Budgets = field(default_factory=Budgets)
    sandbox: Sandbox | None = None
    """Confinement of kustomize and helm; None means the operator's setting (see
    `core.host.sandbox.from_setting`), which is the full sandbox unless set otherwise."""


class RenderObserver:
    """What one preview saw: the units it actually rendered and the Secret values it met.

    One per preview, never shared between previews: a long-lived service that reused it would
    grow it with every pull request, and scrub one pull request's messages with another's values.
    """

    def __init__(self, on_render: Callable[[str], None] | None = None) -> None:
        self.rendered: list[str] = []
        """Units actually rendered (cache misses), for reporting and tests."""
        self.discovered: list[str] = []
        """Clusters discovered unit by unit, as `<revision> <path>` (not kept nor carried)."""
        self.planned: list[str] = []
        """Clusters taken whole by the head whose plan was not kept yet (`core.plan.kept`)."""
        self.on_render = on_render
        """Called from a worker thread after each actual render, with the unit's name."""
        self.known_secrets = secrets.KnownValues()
        """Cleartext Secret values met so far, scrubbed from every message (memory only)."""

    def rendered_unit(self, name: str) -> None:
        """Record one actual render (called from worker threads)."""
        self.rendered.append(name)
        if self.on_render is not None:
            self.on_render(name)


@dataclass(frozen=True)
class RenderSettings:
    """One preview's renders: the options, the shared cache, and this preview's own state.

    The options and the cache may outlive the preview (a service keeps them warm); the observer,
    the deadline and the chart puller belong to this preview alone.
    """

    options: RenderOptions
    cache: RenderCache
    observer: RenderObserver = field(default_factory=RenderObserver, compare=False)
    deadline: Deadline | None = field(default=None, compare=False)
    """When the whole preview must be done; set by the preview when it starts."""
    charts: ChartPuller | None = field(default=None, compare=False)
    """Downloads HelmRepository charts (default: one caching under the render cache). Per
    preview: the hosts the trusted base pulled from widen only this preview's head."""

    def __post_init__(self) -> None:
        if self.charts is None:
            # One puller per preview: base and head share its index and failure caches.
            object.__setattr__(self, "charts", ChartPuller(self.cache.root / "charts"))

    @property
    def chart_puller(self) -> ChartPuller:
        """The chart puller (always set after construction)."""
        assert self.charts is not None  # noqa: S101 - set in __post_init__
        return self.charts

    @property
    def known_secrets(self) -> secrets.KnownValues:
        """The Secret values this preview met (its observer's)."""
        return self.observer.known_secrets

    def with_options(self, **changes: Any) -> RenderSettings:
        """The same preview with some options changed (a side's fetch policy, say)."""
        return dataclasses.replace(self, options=dataclasses.replace(self.options, **changes))


class UnitRenderer:
    """Renders the units of one revision of one repository."""

    def __init__(
        self,
        settings: RenderSettings,
        artifacts: Artifacts,
        *,
        pool: ThreadPoolExecutor | None = None,
        selection: Selection | None = None,
        carry: Carry | None = None,
    ) -> None:
        """Set up the renderer of one revision.

        `selection` proves units unchanged instead of rendering them (changed-only); `carry`
        hands the head the base's renders the change cannot reach.
        """
        self.settings = settings
        self.options = settings.options
        self.selection = selection
        self.carry = carry
        self.artifacts = artifacts
        self.tree: TreeView = artifacts.tree
        self.masker = secrets.Masker(settings.cache.masking_key(), known=settings.known_secrets)
        self.oci = ocisource.OCISources(settings.options.fetch_policy, settings.cache.root / "oci")
        # A pool shared with the other side keeps --jobs the real number of parallel renders.
        self._own_pool = pool is None
        self.pool = pool or ThreadPoolExecutor(max_workers=max(1, settings.options.jobs))
        self._generators: dict[int, tuple[Manifest, GeneratorSpec | TidegateError]] = {}

    @functools.cached_property
    def _kustomize_id(self) -> str:
        """Kustomize as a cache key names it: by content, so an upgrade at the same path misses.

        Once per revision's renderer, not per unit; helm's below is hashed only if a unit needs it.
        """
        return tool_identity.identify(self.options.kustomize, self.settings.cache.root / "tools")

    @functools.cached_property
    def _helm_id(self) -> str:
        """Helm as a cache key names it (see `_kustomize_id`)."""
        return tool_identity.identify(self.options.helm, self.settings.cache.root / "tools")

    def tool_ids(self) -> tuple[str, str]:
        """Kustomize and helm by content, as cache keys name them."""
        return self._kustomize_id, self._helm_id

    def _masked(self, objects: Sequence[Clear]) -> tuple[Manifest, ...]:
        """The one masking boundary: nothing before it is cached, compared or reported."""
        return tuple(obj.masked(self.masker) for obj in objects)

    def _count_render(self, spec: UnitSpec) -> None:
        self.settings.observer.rendered_unit(str(spec.unit))

    def close(self) -> None:
        """Stop the worker threads, unless the pool belongs to the caller."""
        if self._own_pool:
            self.pool.shutdown()

    def __call__(
        self,
        specs: Sequence[UnitSpec],
        objects: Mapping[ObjectRef, Manifest],
        self_source: SourceRef | None,
    ) -> list[RenderedUnit | Pending]:
        """Render a batch of units in parallel, in order.

        Each render starts as soon as it is prepared, so renders overlap the preparation (input
        walks, lookups) of the units after it. The units the change touches are prepared first
        (`_preparation_order`), and the first of them that renders gets the interpreter until its
        tool runs (`_under_way`): at the head of a warm preview that render is the preview's
        longest step, and the lookups of the rest then happen while it runs. The results keep
        the order of `specs`; only the order of the work changes, never what it gives.
        """
        touched = self._touched(specs)
        started: dict[int, Future[RenderedUnit] | RenderedUnit | Pending] = {}
        waited = False
        for index in sorted(range(len(specs)), key=lambda i: i not in touched):
            job = self._prepare(specs[index], objects, self_source)
            if not callable(job):
                started[index] = job
            elif index in touched and not waited:
                waited = True
                started[index] = self._under_way(job)
            else:
                started[index] = self.pool.submit(job)
        return [
            item.result() if isinstance(item, Future) else item
            for item in (started[index] for index in range(len(specs)))
        ]

    def _touched(self, specs: Sequence[UnitSpec]) -> frozenset[int]:
        """The Kustomizations of `specs` that build a directory the change touches (at the head).

        A guess from paths, for the order of the work only: a unit under a changed file usually
        renders, the others are usually lookups. A change of many files gains nothing from it.
        """
        carry = self.carry
        if carry is None or carry.side != "head" or not 0 < len(carry.changed) <= _GUESS_LIMIT:
            return frozenset()
        changed = tuple(carry.changed)
        found = set()
        for index, spec in enumerate(specs):
            if isinstance(spec, KustomizationSpec):
                root = source_path(spec.path)
                prefix = f"{root}/" if root else ""
                if any(path.startswith(prefix) for path in changed):
                    found.add(index)
        return frozenset(found)

    def _under_way(self, job: Callable[[], RenderedUnit]) -> Future[RenderedUnit]:
        """Submit a render and wait until its tool has started (or it ended, or a moment passed).

        While this thread waits, the render's own preparation (the input walk, the copies) has
        the interpreter to itself. The wait is bounded: a busy pool must not hold up the rest.
        """
        running = threading.Event()

        def run() -> RenderedUnit:
            try:
                with command.on_start(running.set):
                    return job()
            finally:
                running.set()

        future = self.pool.submit(run)
        running.wait(_UNDER_WAY_WAIT)
        return future

    def _prepare(
        self, spec: UnitSpec, objects: Mapping[ObjectRef, Manifest], self_source: SourceRef | None
    ) -> Callable[[], RenderedUnit] | RenderedUnit | Pending:
        """Resolve everything that depends on other units; return the render to run."""
        try:
            self._check_deadline()
            if self.selection is not None:
                objects = self.selection.watch(objects)
            if (
                isinstance(spec, KustomizationSpec)
                and spec.source.kind == "OCIRepository"
                and spec.source != self_source
                and spec.source not in self.options.sources
            ):
                # (The root's own source is this repository, whatever its kind: a fleet that
                # CI pushes as an OCI artifact is previewed from its files.)
                return self._guarded(spec, None, self._oci_kustomization(spec, objects))
            source = self._source_for(spec.source, self_source, spec, objects)
            if isinstance(spec, KustomizationSpec):
                own = _is_own(spec.source, self_source)
                ignore = _spec_ignore(objects, spec.source) if own else None
                job = self._kustomization(spec, source, objects, own=own, ignore=ignore)
                return self._guarded(spec, source, job)
            return self._guarded(
                spec, source, self._helm_release(spec, source, objects, self_source)
            )
        except _Missing as missing:
            return Pending(missing.what, missing.message)
        except ocisource.MissingSource as missing:
            return Pending(str(missing.ref))
        except SourceUnavailableError as exc:
            # Unreachable is reported apart from broken (see docs/security.md).
            failed = self._failed(spec, exc)
            return dataclasses.replace(failed, unavailable_source=exc.url)
        except Exception as exc:
            return self._failed(spec, exc)

    def _check_deadline(self) -> None:
        if self.settings.deadline is not None:
            self.settings.deadline.check()

    def _limits(self) -> Limits:
        """The tool bounds, with the time cut to what is left of the preview."""
        limits = self.options.limits
        if self.settings.deadline is None:
            return limits
        return dataclasses.replace(limits, timeout=self.settings.deadline.bound(limits.timeout))

    def _guarded(
        self,
        spec: UnitSpec,
        source: FileSource | None,
        job: Callable[[], RenderedUnit] | RenderedUnit,
    ) -> Callable[[], RenderedUnit] | RenderedUnit:
        """Wrap a render so that it checks its result and turns any failure into a failed unit.

        Cached renders are checked too: the check is cheap, and a cache filled before it existed
        must not bypass it.
        """
        if not callable(job):
            return job if job.error is not None else self._checked(spec, job)

        def run() -> RenderedUnit:
            try:
                self._check_deadline()
                result = job()
            except Exception as exc:
                return self._failed(spec, exc, source)
            if result.error is not None:
                # Keep what the render recorded (an unavailable source, say); scrub the reason.
                reason = self._reason(spec, TidegateError(result.error), source)
                return dataclasses.replace(result, error=reason, failure=result.failure)
            return self._checked(spec, result)

        return run

    def _checked(self, spec: UnitSpec, result: RenderedUnit) -> RenderedUnit:
        """Fail a render whose objects the API server would refuse, or that would show a token."""
        objects = result.objects or {}
        for ref in objects:
            problem = _identity_problem(ref)
            if problem:
                origin = objects[ref].source
                where = f" (in {origin})" if origin else ""
                return self._failed(spec, InputError(f"{spec.unit}: {ref.kind}{where}: {problem}"))
        return result

    def _failed(
        self, spec: UnitSpec, exc: Exception, source: FileSource | None = None
    ) -> RenderedUnit:
        """A failed unit with a one-line, Secret-free reason."""
        return _failure(spec, self._reason(spec, exc, source), _kind_of(exc, self.settings))

    def _reason(self, spec: UnitSpec, exc: Exception, source: FileSource | None = None) -> str:
        """The one-line, Secret-free reason a unit failed."""
        deadline = self.settings.deadline
        if deadline is not None and deadline.expired:
            # A tool cut short by the deadline reports a timeout; the budget is the real cause.
            message = f"{spec.unit}: {deadline.error()}"
        elif isinstance(exc, TidegateError):
            # Errors raised below the renderers (a budget, say) do not know the unit yet.
            message = str(exc) if str(spec.unit) in str(exc) else f"{spec.unit}: {exc}"
        else:
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            message = f"{spec.unit}: internal error ({type(exc).__name__}: {first})"
        if source is not None and isinstance(spec, KustomizationSpec):
            self._learn_secrets(spec, source)
        return self.settings.known_secrets.scrub(message)

    def _learn_secrets(self, spec: KustomizationSpec, source: FileSource) -> None:
        """Collect the Secret values in a failed Kustomization's inputs, to scrub its error.

        Only on failure: a tool's error text may quote a Secret the build never got to output,
        and so the masker never saw. Best effort: what cannot be read holds nothing to learn.
        """
        try:
            files = kustomize_inputs(source, source_path(spec.path))
        except Exception:
            return
        for value in secret_values(source, files):
            self.settings.known_secrets.add(value)

    def _source_for(
        self,
        ref: SourceRef,
        self_source: SourceRef | None,
        spec: UnitSpec,
        objects: Mapping[ObjectRef, Manifest],
    ) -> FileSource:
        if _is_own(ref, self_source):
            return self.artifacts.repository(_spec_ignore(objects, ref))
        if ref.kind == "ExternalArtifact":
            return self._external(ref, spec, objects, self_source)
        directory = self.options.sources.get(ref)
        if directory is not None:
            return DirectorySource(directory)
        if isinstance(spec, HelmReleaseSpec) and ref.kind in (
            "HelmRepository",
            "OCIRepository",
            "HelmChart",
        ):
            # Resolved from the objects rendered in the cluster, not read as a directory.
            return self.artifacts.repository(None)
        if ObjectRef(FLUX_SOURCE_GROUP, ref.kind, ref.namespace, ref.name) not in objects:
            # Another unit may still render it; if none does, say so rather than advise --source.
            raise _Missing(str(ref), f"{_spaced(ref)} is not defined in this repository")
        raise TidegateError(
            f"{spec.unit}: source {ref} is not this repository; "
            f"pass --source {ref}=DIR to render it"
        )

    def _external(
        self,
        ref: SourceRef,
        spec: UnitSpec,
        objects: Mapping[ObjectRef, Manifest],
        self_source: SourceRef | None,
    ) -> FileSource:
        """Compose an ExternalArtifact from the ArtifactGenerator that declares it."""
        directory = self.options.sources.get(ref)
        if directory is not None:
            return DirectorySource(directory)
        if isinstance(spec, KustomizationSpec):
            _check_external_artifact_gate(spec, ref, objects)
        generator = self._generator_for(ref, objects)
        if generator is None:
            raise _Missing(
                str(ref),
                f"{_spaced(ref)} is not composed by any ArtifactGenerator in this repository",
            )
        views: dict[str, FileView] = {}
        for alias, source in generator.sources.items():
            src = SourceRef(source.kind, source.namespace, source.name)
            if _is_own(src, self_source):
                views[alias] = self.artifacts.repository(_spec_ignore(objects, src))
            elif src in self.options.sources:
                views[alias] = self.artifacts.directory(self.options.sources[src])
            else:
                raise TidegateError(
                    f"{spec.unit}: {generator.label} (file {generator.file}) copies from {src}, "
                    f"which is not this repository; pass --source {src}=DIR to render it"
                )
        return self.artifacts.generated(generator, ref.name, views)

    def _generator_for(
        self, ref: SourceRef, objects: Mapping[ObjectRef, Manifest]
    ) -> GeneratorSpec | None:
        """Find the ArtifactGenerator in the artifact's namespace that declares it."""
        for obj in objects:
            if obj.group != GENERATOR_GROUP or obj.kind != GENERATOR_KIND:
                continue
            if obj.namespace not in (ref.namespace, ""):
                continue
            generator = self._parse_generator(objects[obj])
            if generator.namespace == ref.namespace and generator.artifact(ref.name):
                return generator
        return None

    def _parse_generator(self, manifest: Manifest) -> GeneratorSpec:
        entry = self._generators.get(id(manifest))
        if entry is None:
            try:
                parsed: GeneratorSpec | TidegateError = parse_generator(
                    manifest.body, file=manifest.source
                )
            except TidegateError as exc:
                parsed = exc
            # The manifest is kept alongside, so its id cannot be reused while cached.
            entry = self._generators[id(manifest)] = (manifest, parsed)
        if isinstance(entry[1], TidegateError):
            raise entry[1]
        return entry[1]

    def _oci_kustomization(
        self, spec: KustomizationSpec, objects: Mapping[ObjectRef, Manifest]
    ) -> Callable[[], RenderedUnit] | RenderedUnit:
        """A Kustomization over an OCIRepository's artifact, pulled before kustomize runs."""
        try:
            content = self.oci.repository(spec.source, objects, as_directory=True)
            view = self.oci.view(content)
        except InputError as exc:
            raise exc.reworded(f"{spec.unit}: source {spec.source}: {exc}") from None
        except ocisource.MissingSource:
            raise
        except TidegateError as exc:
            raise _oci_error(f"{spec.unit}: ", exc) from None
        # The artifact's digest addresses its content; only the defining file is a repository
        # input (the ownership index must not mistake artifact paths for repository files).
        # The ignore rules decide which files the artifact holds: they are part of its identity.
        identity = (
            f"{content.artifact.revision} {content.spec.operation} ignore={content.spec.ignore!r}"
        )
        return self._kustomization(spec, view, objects, artifact=(identity, content.defined_in))

    def _kustomization(
        self,
        spec: KustomizationSpec,
        source: FileSource,
        objects: Mapping[ObjectRef, Manifest],
        *,
        artifact: tuple[str, str | None] | None = None,
        own: bool = False,
        ignore: str | None = None,
    ) -> Callable[[], RenderedUnit] | RenderedUnit:
        variables, secret_names, read_from = _variables(spec, objects)
        tree: TreeView = source if isinstance(source, FileView) else _DirectoryTree(source)
        if artifact is not None:
            tree = _ArtifactTree(artifact[0])
            read_from |= frozenset([artifact[1]] if artifact[1] else [])
        key = canonical_key(
            "kustomization",
            _spec_fields(spec),
            variables,
            sorted(secret_names),
            self._kustomize_id,
            self.options.allowed_remotes,
            *([artifact[0]] if artifact is not None else []),
        )
        own_view = own and isinstance(source, FileView)
        selection = self.selection if own_view else None
        carry = self.carry if own_view else None
        # The ignore rules decide what the repository's artifact holds.
        proof_key = canonical_key(key, ignore) if own_view else ""
        if selection is not None:
            reused = selection.reuse(proof_key)
            if reused is not None:
                return _rendered(spec, reused, _repository_files(source, reused.inputs, read_from))
        if carry is not None:
            carried = carry.take(proof_key)
            if carried is not None:
                files = _repository_files(source, carried.inputs, read_from)
                return _rendered(spec, carried, files, carry_key=proof_key)
        cached = self.settings.cache.lookup(key, tree)
        if cached is not None:
            if selection is not None:
                selection.remember(proof_key, cached, read_from)
            if carry is not None:
                carry.keep(proof_key, cached)
            files = _repository_files(source, cached.inputs, read_from)
            return _rendered(spec, cached, files, carry_key=proof_key)
        if selection is not None and isinstance(source, FileView):
            proven = selection.prove(
                spec,
                source,
                proof_key,
                read_from=read_from,
                values=(variables or {}).values(),
                cache=self.settings.cache,
            )
            if proven is not None:
                return _rendered(spec, CachedRender(affected.UNCHANGED, proven), proven)

        def render() -> RenderedUnit:
            workdir = Path(tempfile.mkdtemp(prefix="tidegate-ks-", dir=self.options.work_root))
            try:
                result = kustomize.render_kustomization(
                    spec,
                    source,
                    kustomize=self.options.kustomize,
                    workdir=workdir,
                    variables=variables,
                    secret_variables=secret_names,
                    limits=self._limits(),
                    allowed_remotes=self.options.allowed_remotes,
                    sandbox=self.options.sandbox,
                )
            except TidegateError as exc:
                return _failure(spec, str(exc), exc.failure)
            finally:
                workspace.remove_later(workdir)  # off this render's path (`core.host.workspace`)
            # The files defining its substitution sources are inputs too (ownership index). An
            # artifact's own paths are not repository files: only its defining file counts.
            inputs = read_from if artifact is not None else result.inputs | read_from
            render = CachedRender.of(self._masked(result.objects), inputs)
            render = self.settings.cache.store(key, tree, render)
            if carry is not None:
                carry.keep(proof_key, render)
            self._count_render(spec)
            files = _repository_files(source, render.inputs, read_from)
            return _rendered(spec, render, files, carry_key=proof_key)

        return render

    def _helm_release(
        self,
        spec: HelmReleaseSpec,
        source: FileSource,
        objects: Mapping[ObjectRef, Manifest],
        self_source: SourceRef | None,
    ) -> Callable[[], RenderedUnit]:
        documents, read_from = _values_documents(spec, objects)
        values = helm.merge_values(documents, spec.values)
        if spec.chart_ref is not None and spec.chart_ref.kind == "HelmChart":
            # A HelmChart names a chart in a source exactly as spec.chart.spec does.
            chart_spec, defined_in = _helm_chart(spec, objects)
            chart_source = self._source_for(chart_spec.source, self_source, chart_spec, objects)
            inner = self._helm_release(chart_spec, chart_source, objects, self_source)
            if defined_in is None:
                return inner
            return lambda: _with_inputs(inner(), frozenset([defined_in]))
        chart_id, inputs, make_chart = self._chart_for(spec, source, objects)
        # The files defining its values sources are inputs too (ownership index).
        inputs |= read_from
        key = canonical_key("helmrelease", _spec_fields(spec), values, chart_id, self._helm_id)
        cached = self.settings.cache.lookup(key, self.tree)
        if cached is not None:
            return lambda: _rendered(spec, cached, cached.inputs)

        def render() -> RenderedUnit:
            workdir = Path(tempfile.mkdtemp(prefix="tidegate-hr-", dir=self.options.work_root))
            try:
                chart_crds: set[ObjectRef] = set()
                chart = make_chart(workdir)
                objects = helm.render_helm_release(
                    spec,
                    chart,
                    values,
                    helm=self.options.helm,
                    workdir=workdir,
                    kube_version=self.options.kube_version,
                    limits=self._limits(),
                    kustomize=self.options.kustomize,
                    sandbox=self.options.sandbox,
                    chart_crds=chart_crds,
                )
            except SourceUnavailableError as exc:
                return _failure(spec, f"{spec.unit}: {exc}", exc.failure, unavailable=exc.url)
            except TidegateError as exc:
                return _failure(spec, str(exc), exc.failure)
            finally:
                workspace.remove_later(workdir)
            render = CachedRender.of(self._masked(objects), inputs, chart_crds)
            render = self.settings.cache.store(key, self.tree, render)
            self._count_render(spec)
            return _rendered(spec, render, render.inputs)

        return render

    def _chart_for(
        self, spec: HelmReleaseSpec, source: FileSource, objects: Mapping[ObjectRef, Manifest]
    ) -> tuple[object, frozenset[str], Callable[[Path], Path]]:
        """Resolve a release's chart: its cache identity, repository inputs and how to get it.

        OCI content is resolved and downloaded here, before any tool runs; what the returned
        function does is local.
        """
        if spec.chart_ref is not None and spec.chart_ref.kind == "ExternalArtifact":
            raise TidegateError(
                f"{spec.unit}: chartRef to {spec.chart_ref}: ExternalArtifact charts are not "
                "previewed yet"
            )
        if spec.chart_ref is not None:
            try:
                content = self.oci.repository(spec.chart_ref, objects, as_directory=False)
            except ocisource.MissingSource:
                raise
            except TidegateError as exc:
                raise _oci_error(f"{spec.unit}: chartRef: ", exc) from None
            artifact = content.artifact
            where = f"{spec.unit}: {spec.chart_ref}"
            return (
                ("oci-artifact", artifact.revision, str(artifact.path.name)),
                frozenset([content.defined_in] if content.defined_in else []),
                lambda workdir: self._oci_chart(where, content, workdir),
            )
        if spec.source.kind == "HelmRepository":
            repo = objects.get(
                ObjectRef(
                    FLUX_SOURCE_GROUP, "HelmRepository", spec.source.namespace, spec.source.name
                )
            )
            if repo is None:
                raise _Missing(str(spec.source))
            if ocisource.is_oci_helm_repository(repo):
                try:
                    pulled = self.oci.helm_repository_chart(repo, spec.chart, spec.version)
                except TidegateError as exc:
                    raise _oci_error(f"{spec.unit}: {spec.source}: ", exc) from None

                def pull_again() -> Path:
                    again = self.oci.helm_repository_chart(repo, spec.chart, spec.version)
                    if again.digest != pulled.digest:
                        raise TidegateError(
                            f"{spec.unit}: {spec.source}: chart {spec.chart} changed in the "
                            "registry during the preview"
                        )
                    return again.package

                return (
                    ("oci-chart", pulled.digest),
                    frozenset(),
                    lambda workdir: _private_copy(pulled.package, workdir, pull_again),
                )
            url = str((repo.body.get("spec") or {}).get("url") or "")
            if not url:
                raise TidegateError(f"{spec.unit}: {spec.source} has no spec.url")
            # Refuse a host off the allow-list before the render cache could answer for it.
            self._check_source_url(url, spec)
            return (
                (url, spec.chart, spec.version),
                frozenset(),
                lambda workdir: self._chart(spec, source, url, workdir),
            )
        chart_files = frozenset(helm.chart_inputs(source, spec.chart))
        chart_id = (
            source.digest(chart_files) if isinstance(source, FileView) else sorted(chart_files)
        )
        # Ownership and the cache's receipts speak of repository files.
        inputs = _repository_files(source, chart_files, frozenset())
        return chart_id, inputs, lambda workdir: self._chart(spec, source, "", workdir)

    def _check_source_url(self, url: str, spec: HelmReleaseSpec) -> None:
        if url.startswith("oci://"):
            return  # OCI repositories: the registry client applies the same policy
        try:
            self.options.fetch_policy.check_host(parse_url(url))
        except FetchError as exc:
            raise exc.reworded(f"{spec.unit}: {spec.source}: {exc}") from None

    def _oci_chart(self, where: str, content: ocisource.OCIContent, workdir: Path) -> Path:
        """A chart directory from an OCIRepository artifact, pulled again if it was evicted."""
        if mark_used(content.artifact.path):
            try:
                return _located(where, ocisource.prepare_chart, content.artifact, workdir)
            except OSError:  # a directory copy that lost its source half way
                shutil.rmtree(workdir / "oci-chart", ignore_errors=True)
        # The cache's byte budget (another process's pass) removed the artifact since it was
        # pulled: pull it again.
        try:
            again = self.oci.again(content, as_directory=False)
        except TidegateError as exc:
            raise _oci_error(f"{where}: ", exc) from None
        return _located(where, ocisource.prepare_chart, again.artifact, workdir)

    def _chart(self, spec: HelmReleaseSpec, source: FileSource, url: str, workdir: Path) -> Path:
        if url:
            try:

                def pull() -> Path:
                    return self.settings.chart_puller.pull(
                        url, spec.chart, spec.version, self.options.fetch_policy
                    )

                return _private_copy(pull(), workdir, pull)
            except SourceUnavailableError:
                raise
            except TidegateError as exc:
                raise exc.reworded(f"{spec.unit}: {spec.source}: {exc}") from None
        return helm.chart_from_source(source, spec.chart, workdir / "chart")


class _Missing(Exception):  # noqa: N818 - control flow, never shown
    """An object a unit needs has not been rendered (yet)."""

    def __init__(self, what: str, message: str | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.message = message


_KUSTOMIZE_CONTROLLER = ObjectRef("apps", "Deployment", "flux-system", "kustomize-controller")


def _check_external_artifact_gate(
    spec: KustomizationSpec, ref: SourceRef, objects: Mapping[ObjectRef, Manifest]
) -> None:
    """Fail a Kustomization Flux would deny its ExternalArtifact source.

    kustomize-controller reads ExternalArtifacts only with `--feature-gates=ExternalArtifact=true`
    (what `flux bootstrap --components-extra=source-watcher` sets); without it the Kustomization
    never reconciles. The controller's Deployment is checked when this repository renders it.
    """
    controller = objects.get(_KUSTOMIZE_CONTROLLER)
    if controller is None:
        return
    template = ((controller.body.get("spec") or {}).get("template") or {}).get("spec") or {}
    args = [
        str(arg)
        for container in template.get("containers") or []
        if isinstance(container, Mapping)
        for arg in container.get("args") or []
    ]
    gates = [
        gate.strip()
        for arg in args
        if arg.startswith("--feature-gates=")
        for gate in arg.removeprefix("--feature-gates=").split(",")
    ]
    if "ExternalArtifact=true" not in gates:
        where = f" (defined in {controller.source})" if controller.source else ""
        raise TidegateError(
            f"{spec.unit}: Flux denies its source {ref}: kustomize-controller{where} runs without "
            "--feature-gates=ExternalArtifact=true (flux bootstrap --components-extra="
            "source-watcher sets it)"
        )


def _is_own(ref: SourceRef, self_source: SourceRef | None) -> bool:
    """Tell whether a source means this repository.

    That is the root's source, or any GitRepository while the root itself is being rendered.
    """
    return ref == self_source or (self_source is None and ref.kind == "GitRepository")


def _spaced(ref: SourceRef) -> str:
    """`GitRepository controllers/flux-system`, as Flux's messages name a source."""
    return f"{ref.kind} {ref.namespace}/{ref.name}"


def _spec_ignore(objects: Mapping[ObjectRef, Manifest], ref: SourceRef) -> str | None:
    """The `spec.ignore` of a GitRepository rendered so far, if any."""
    found = objects.get(ObjectRef(FLUX_SOURCE_GROUP, "GitRepository", ref.namespace, ref.name))
    ignore = (found.body.get("spec") or {}).get("ignore") if found is not None else None
    return ignore if isinstance(ignore, str) else None


def _repository_files(
    source: FileSource, inputs: frozenset[str], extra: frozenset[str]
) -> frozenset[str]:
    """The repository files behind a render's inputs (an artifact path maps to its origin)."""
    if isinstance(source, FileView):
        return source.origins(inputs - extra) | extra
    return inputs


class _DirectoryTree:
    """A `TreeView` over a `FileSource` without blob ids: digests hash the bytes."""

    def __init__(self, source: FileSource) -> None:
        self.source = source

    def digest(self, paths: Any = None) -> str:
        digest = hashlib.sha256()
        for path in sorted(paths or []):
            content = self.source.read(path) if self.source.is_file(path) else None
            blob = hashlib.sha256(content).hexdigest() if content is not None else "-"
            digest.update(f"{path}\0{blob}\n".encode())
        return digest.hexdigest()

    def listdir(self, path: str = "") -> list[str]:
        if not self.source.is_dir(path):
            raise NotADirectoryError(path)
        return self.source.listdir(path)


def _oci_error(prefix: str, exc: TidegateError) -> TidegateError:
    """Name the unit in an OCI failure; an unreachable registry stays `unavailable`."""
    if isinstance(exc, OCIError) and exc.unavailable:
        return SourceUnavailableError(exc.unavailable, f"{prefix}{exc}")
    return exc.reworded(f"{prefix}{exc}")


class _ArtifactTree:
    """A `TreeView` for content addressed by an artifact digest: nothing in it can change."""

    def __init__(self, revision: str) -> None:
        self.revision = revision

    def digest(self, paths: Any = None) -> str:
        return hashlib.sha256(self.revision.encode()).hexdigest()

    def listdir(self, path: str = "") -> list[str]:
        return []


def _helm_chart(
    spec: HelmReleaseSpec, objects: Mapping[ObjectRef, Manifest]
) -> tuple[HelmReleaseSpec, str | None]:
    """Turn a chartRef to a HelmChart into the chart and source the HelmChart names."""
    ref = spec.chart_ref
    assert ref is not None  # noqa: S101 - the caller checked
    found = objects.get(ObjectRef(FLUX_SOURCE_GROUP, "HelmChart", ref.namespace, ref.name))
    if found is None:
        raise _Missing(str(ref))
    body: Any = found.body.get("spec") or {}
    label = str(ref)

    def fail(field_name: str, message: str) -> NoReturn:
        raise InputError(message, file=found.source, obj=label, field=field_name)

    if not isinstance(body, Mapping):
        fail("spec", "must be a mapping")
    chart = body.get("chart")
    if not isinstance(chart, str) or not chart:
        fail("spec.chart", "is required")
    version = body.get("version") or "*"
    if not isinstance(version, str):
        fail("spec.version", "must be a string")
    source_ref = body.get("sourceRef")
    if not isinstance(source_ref, Mapping) or not source_ref.get("name"):
        fail("spec.sourceRef.name", "is required")
    kind = source_ref.get("kind")
    if kind not in ("HelmRepository", "GitRepository", "Bucket"):
        fail("spec.sourceRef.kind", "must be HelmRepository, GitRepository or Bucket")
    if body.get("valuesFiles"):
        fail("spec.valuesFiles", "is not supported in previews yet")
    # The HelmChart's source lives in the HelmChart's namespace (its sourceRef has none).
    source = SourceRef(str(kind), ref.namespace, str(source_ref["name"]))
    resolved = dataclasses.replace(
        spec, chart=chart, version=version, source=source, chart_ref=None
    )
    return resolved, found.source


def _with_inputs(unit: RenderedUnit, extra: frozenset[str]) -> RenderedUnit:
    return (
        dataclasses.replace(unit, inputs=unit.inputs | extra) if unit.objects is not None else unit
    )


def _private_copy(archive: Path, workdir: Path, pull_again: Callable[[], Path]) -> Path:
    """A cached chart archive linked (else copied) into the unit's work directory.

    Helm then reads a file the cache's byte budget cannot take away; one the budget removed
    between the pull and this is pulled again.
    """
    target = workdir / "chart-archive.tgz"
    try:
        _link_or_copy(archive, target)
    except FileNotFoundError:
        _link_or_copy(pull_again(), target)
    return target


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except FileNotFoundError:
        raise
    except OSError:  # another file system, or links not allowed there
        shutil.copyfile(source, target)


def _located(where: str, prepare: Callable[..., Path], artifact: Any, workdir: Path) -> Path:
    """Run a chart preparation, naming the release and source in its error."""
    try:
        return prepare(artifact, workdir, track_digest=True)
    except TidegateError as exc:
        raise exc.reworded(f"{where}: {exc}") from None


def _referenced(
    objects: Mapping[ObjectRef, Manifest], spec: UnitSpec, kind: str, name: str, *, optional: bool
) -> Manifest | None:
    """Return a ConfigMap or Secret a unit reads from its own namespace.

    None when it is missing but optional; `_Missing` when it is required, so discovery retries
    the unit after its siblings render and fails it, naming the object, if it never appears.
    """
    found = objects.get(ObjectRef("", kind, spec.unit.namespace, name))
    if found is None and not optional:
        raise _Missing(f"{kind}/{spec.unit.namespace}/{name}")
    return found


def _variables(
    spec: KustomizationSpec, objects: Mapping[ObjectRef, Manifest]
) -> tuple[dict[str, str] | None, frozenset[str], frozenset[str]]:
    """Return the postBuild variables, the names that came from Secrets, and their source files.

    The variables are None without postBuild. Secret values are known only as mask tokens;
    substituting a token keeps a Secret-derived field comparable while its value stays hidden.
    """
    always = spec.substitute_strategy == "Always"
    if not spec.substitute and not spec.substitute_from and not always:
        return None, frozenset(), frozenset()
    variables: dict[str, str] = {}
    from_secrets: set[str] = set()
    files: set[str] = set()
    for item in spec.substitute_from:
        found = _referenced(objects, spec, item.kind, item.name, optional=item.optional)
        if found is None:
            continue
        files.update([found.source] if found.source else [])
        data = found.body.get("data") or {}
        for name, value in data.items():
            variables[str(name)] = str(value)
            if item.kind == "Secret":
                from_secrets.add(str(name))
            else:
                from_secrets.discard(str(name))
    for name, value in spec.substitute.items():
        variables[name] = value
        from_secrets.discard(name)
    if not variables and not always:
        # Flux's default strategy substitutes only when at least one variable resolved.
        return None, frozenset(), frozenset(files)
    return variables, frozenset(from_secrets), frozenset(files)


def _values_documents(
    spec: HelmReleaseSpec, objects: Mapping[ObjectRef, Manifest]
) -> tuple[list[tuple[Any, str | None]], frozenset[str]]:
    """Return each `valuesFrom` document with its target path, in order, and their source files."""
    documents: list[tuple[Any, str | None]] = []
    files: set[str] = set()
    for item in spec.values_from:
        found = _referenced(objects, spec, item.kind, item.name, optional=item.optional)
        if found is None:
            continue
        files.update([found.source] if found.source else [])
        if item.kind == "Secret":
            raise TidegateError(
                f"{spec.unit}: valuesFrom Secret/{spec.unit.namespace}/{item.name} cannot be "
                "previewed: Secret values are never read in cleartext"
            )
        raw = (found.body.get("data") or {}).get(item.values_key)
        if raw is None:
            if item.optional:
                continue
            raise TidegateError(
                f"{spec.unit}: valuesFrom ConfigMap/{spec.unit.namespace}/{item.name} "
                f"has no key {item.values_key!r}"
            )
        document = raw if item.target_path else yamlio.load(raw)
        documents.append((document, item.target_path))
    return documents, frozenset(files)


def _spec_fields(spec: UnitSpec) -> dict[str, Any]:
    """The spec as data for a cache key, minus where it was written (a move renders the same).

    Shallow on purpose: nested values are frozen dataclasses, tuples and plain mappings, which
    `canonical_key` serialises deterministically; a deep `asdict` cost more than the lookup.
    """
    return {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec) if f.name != "file"}


def _rendered(
    spec: UnitSpec, render: CachedRender, inputs: frozenset[str], *, carry_key: str = ""
) -> RenderedUnit:
    is_ks = isinstance(spec, KustomizationSpec)
    return RenderedUnit(
        unit=spec.unit,
        prune=spec.prune if isinstance(spec, KustomizationSpec) else True,
        objects=render.objects,
        suspend=spec.suspend,
        deletion_policy=spec.deletion_policy if isinstance(spec, KustomizationSpec) else "Delete",
        path=spec.path if is_ks else spec.chart,  # type: ignore[union-attr]
        inputs=inputs,
        install_crds=DEFAULT_CRD_POLICY if is_ks else spec.install_crds,  # type: ignore[union-attr]
        upgrade_crds=DEFAULT_CRD_POLICY if is_ks else spec.upgrade_crds,  # type: ignore[union-attr]
        chart_crds=render.chart_crds,
        render_key=render.key,
        carry_key=carry_key,
    )


def _identity_problem(ref: ObjectRef) -> str | None:
    """Say why an object's name or namespace cannot be previewed, or None when both are fine."""
    if secrets.contains_token(ref.name) or secrets.contains_token(ref.namespace):
        field_name = "metadata.name" if secrets.contains_token(ref.name) else "metadata.namespace"
        return (
            f"{field_name} is derived from a Secret value (postBuild.substituteFrom a Secret); "
            "a preview cannot show it without revealing the value, and Flux would apply an "
            "object named after a secret: take names from a ConfigMap or spec.postBuild.substitute"
        )
    return names.name_problem(ref.group, ref.kind, ref.name) or names.namespace_problem(
        ref.namespace
    )


def _kind_of(exc: Exception, settings: RenderSettings) -> Failure:
    """The type of a failure: the deadline wins, as it does in the message; then the error's own."""
    if settings.deadline is not None and settings.deadline.expired:
        return Failure.BUDGET
    return exc.failure if isinstance(exc, TidegateError) else Failure.INTERNAL


def _failure(
    spec: UnitSpec, error: str, failure: Failure, *, unavailable: str | None = None
) -> RenderedUnit:
    return RenderedUnit(
        failure=failure,
        unavailable_source=unavailable,
        unit=spec.unit,
        prune=spec.prune if isinstance(spec, KustomizationSpec) else True,
        objects=None,
        error=error,
        suspend=spec.suspend,
        path=spec.path if isinstance(spec, KustomizationSpec) else spec.chart,
    )
