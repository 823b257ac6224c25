"""The preview use case: what merging head into base does to every cluster of a repository.

This is the one function both the command line and the pull-request app call: resolve the two
revisions, find the cluster entry points, discover and render every unit of each cluster at each
revision (through the shared render cache, so unchanged units cost a lookup), and hand both sides
to the planner. It formats nothing and prints nothing.

The preview's budgets start here: its deadline covers both revisions and every cluster, and each
revision has one unit allowance for all its clusters (see `core.budgets`). A request that names
nothing to preview (a `--path` without Flux Kustomizations, or a repository without any cluster
entry point) is an error, never an empty, passing preview.

Trust for fetching follows the revisions: the base is merged configuration, so it may download
from any host it names (address rules still apply); the head may download only from the hosts
the base used (its sources' URLs and the chart hosts it pulled from), the hosts allowed by
`.tidegate.yaml` at the BASE revision, and the operator's allow-list. Nothing in the head can
widen that list.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from core.budgets import Deadline
from core.changes import ClusterPlan, Preview
from core.config import CONFIG_FILE, FetchConfig, UnavailableSources, parse_fetch_config
from core.errors import InputError
from core.fetch import FetchError, allow_list_entry_of
from core.host.paths import flux_path
from core.plan import kept as kept_plans
from core.plan import plan
from core.render import affected
from core.render import clusters as kept_clusters
from core.render.carry import Carry
from core.render.unit import RenderSettings, UnitRenderer
from core.repo import discovery
from core.repo.artifacts import Artifacts
from core.repo.git import Repository, Tree
from core.units import ClusterRender

__all__ = ["PreviewRequest", "find_clusters", "render_revision", "run_preview"]

# A cheap test for "this directory holds Flux Kustomizations", without parsing YAML.
_FLUX_KUSTOMIZATION = re.compile(rb"kustomize\.toolkit\.fluxcd\.io/v1")

Progress = Callable[[str], None]

# What input walks read: kustomization files and the resources they list.
_WALKED = (".yaml", ".yml", "/Kustomization")
# Bulk reads stop here; the rest of a (hostile, huge) repository is read file by file if needed.
_PREFETCH_BYTES = 32 << 20
# Cluster entry points by the files under clusters/ (`find_clusters`), a few per process.
_CLUSTERS_KEPT = 16
_CLUSTERS: dict[str, tuple[str, ...]] = {}
_CLUSTERS_LOCK = threading.Lock()


@dataclass(frozen=True)
class PreviewRequest:
    """What to compare."""

    base: str
    """Base revision; empty means the merge base of head and the default branch."""
    head: str
    clusters: tuple[str, ...] = ()
    """Cluster entry points; empty means every directory under clusters/ holding Flux objects."""
    unavailable_sources: UnavailableSources | None = None
    """The operator's choice for unreachable sources; None defers to `.tidegate.yaml` at base,
    then to `fail`."""
    changed_only: bool = False
    """Render only the units the change can affect; prove the others unchanged from the files
    their builds read (`core.render.affected`)."""


def run_preview(
    repo: Repository,
    request: PreviewRequest,
    settings: RenderSettings,
    *,
    progress: Progress | None = None,
    specs: discovery.SpecCache | None = None,
) -> Preview:
    """Render both revisions and plan the change.

    The sides run one after the other: measured on a 468-unit fleet, running them in two threads
    was slower, because their Python bookkeeping contends for the interpreter lock. `specs` is a
    long-lived process's memo of parsed unit specs; by default the preview keeps its own.
    """
    head = repo.resolve(request.head)
    base = (
        repo.resolve(request.base)
        if request.base
        else repo.merge_base(head, repo.resolve(repo.default_branch()))
    )
    say = progress or (lambda _message: None)
    if settings.deadline is None:
        settings = dataclasses.replace(
            settings, deadline=Deadline(settings.options.budgets.timeout)
        )
    specs = specs if specs is not None else discovery.SpecCache()
    base_tree, head_tree = repo.tree(base), repo.tree(head)
    clusters = _clusters(repo, request, base_tree, head_tree)
    config = base_config(repo, base_tree)
    trusted = settings.with_options(
        fetch_policy=dataclasses.replace(settings.options.fetch_policy, allowed_hosts=None)
    )
    selection = _selection(request, settings, base_tree, head_tree, say)
    carry = _carry(settings, base_tree, head_tree) if selection is None else None
    # Both sides, and any cluster rendered again in full, see one answer per chart repository:
    # however long the preview runs, a source unreachable at the base stays so at the head.
    with (
        settings.chart_puller.held(),
        ThreadPoolExecutor(max(1, settings.options.jobs), thread_name_prefix="render") as pool,
    ):
        say(f"base {base[:12]}")
        base_renders = render_revision(
            repo,
            base_tree,
            clusters,
            trusted,
            specs=specs,
            pool=pool,
            selection=selection,
            carry=carry,
        )
        used = _source_hosts(base_renders) | settings.chart_puller.hosts_used
        policy = settings.options.fetch_policy.allowing([*used, *config.allow_hosts])
        head_settings = settings.with_options(fetch_policy=policy)
        say(f"head {head[:12]}")
        if selection is not None:
            selection.to_head()
        if carry is not None:
            carry.to_head()
        head_renders = render_revision(
            repo,
            head_tree,
            clusters,
            head_settings,
            specs=specs,
            pool=pool,
            selection=selection,
            carry=carry,
            inherit=base_renders,
        )
        if selection is not None:
            again = _recheck(selection, clusters, base_renders, head_renders, say)
            if again:
                # Rendered in full, within what the other clusters left of each unit budget.
                for side, tree, side_settings, renders in (
                    ("base", base_tree, trusted, base_renders),
                    ("head", head_tree, head_settings, head_renders),
                ):
                    say(f"{side}: rendering {', '.join(again)} in full")
                    allowance = discovery.UnitAllowance(settings.options.budgets)
                    allowance.used = sum(
                        len(render.units) for path, render in renders.items() if path not in again
                    )
                    renders.update(
                        render_revision(
                            repo,
                            tree,
                            again,
                            side_settings,
                            specs=specs,
                            pool=pool,
                            allowance=allowance,
                        )
                    )
    # The next preview of either revision finds its renders without checking receipts.
    settings.cache.save_memos()
    mode = request.unavailable_sources or config.unavailable_sources or UnavailableSources.FAIL
    planned = _whole_plans(settings, base_renders, head_renders)
    return dataclasses.replace(
        plan.plan_preview(base, head, base_renders, head_renders, planned),
        skip_unavailable=mode is UnavailableSources.SKIP,
        proven_unchanged=_proven(request, selection, head_renders),
    )


def _whole_plans(
    settings: RenderSettings,
    base: Mapping[str, ClusterRender],
    head: Mapping[str, ClusterRender],
) -> dict[str, ClusterPlan]:
    """The plans of the kept clusters the head took whole, read as kept or planned and kept.

    Such a cluster is the same object at both sides: its plan depends on nothing else
    (`core.plan.kept`), so a later preview that takes it whole again does not plan it.
    """
    plans = {}
    for path, cluster in head.items():
        if base.get(path) is not cluster or not cluster.kept_key:
            continue
        found = kept_plans.load(settings.cache, path, cluster)
        if found is None:
            settings.observer.planned.append(path)
            found = plan.plan_cluster_at(path, cluster, cluster)
            kept_plans.save(settings.cache, cluster, found)
        plans[path] = found
    return plans


class _Prefetched:
    """Blob reads of one revision, with its YAML files read in bulk when asked (bounded)."""

    def __init__(self, repo: Repository, tree: Tree) -> None:
        self.repo = repo
        self.tree = tree
        self.known: dict[str, bytes] = {}
        self._filled = False

    def fill(self) -> None:
        """Read the revision's YAML files in bulk (once)."""
        if not self._filled:
            self._filled = True
            wanted = [self.tree[path] for path in self.tree if path.endswith(_WALKED)]
            self.known = self.repo.read_blobs(wanted, max_bytes=_PREFETCH_BYTES)

    def __call__(self, blob_id: str) -> bytes:
        found = self.known.get(blob_id)
        return found if found is not None else self.repo.read_blob(blob_id)


def _proven(
    request: PreviewRequest,
    selection: affected.Selection | None,
    renders: Mapping[str, ClusterRender],
) -> int | None:
    """How many units were proven unchanged; None unless changed-only rendering was asked for."""
    if not request.changed_only:
        return None
    return affected.proven_count(renders) if selection is not None else 0


def _selection(
    request: PreviewRequest,
    settings: RenderSettings,
    base_tree: Tree,
    head_tree: Tree,
    say: Progress,
) -> affected.Selection | None:
    """The changed-only selection, or None when every unit must be rendered."""
    if not request.changed_only:
        return None
    if settings.options.allowed_remotes:
        # A remote base's content is not in the repository: no walk can prove it unchanged.
        say("changed-only: off (remote bases are allowed)")
        return None
    changed = affected.changed_paths(base_tree, head_tree)
    reason = affected.global_reason(changed)
    if reason is not None:
        say(f"changed-only: off ({reason})")
        return None
    return affected.Selection(changed, affected.changed_entries(base_tree, head_tree, changed))


def _carry(settings: RenderSettings, base_tree: Tree, head_tree: Tree) -> Carry | None:
    """What the head may take from the base without a cache lookup, or None.

    Off when remote bases are allowed (their content is in no file of the diff) and when the
    change touches `.tidegate.yaml` or an ignore file, which decide what every source holds
    without being any render's input.
    """
    if settings.options.allowed_remotes:
        return None
    carry = Carry.between(base_tree, head_tree)
    return None if affected.global_reason(carry.changed) is not None else carry


def _carried(
    base: ClusterRender,
    carry: Carry,
    settings: RenderSettings,
    allowance: discovery.UnitAllowance,
) -> bool:
    """Tell whether the head takes the base's cluster whole, counting its units if it does."""
    if not carry.cluster(base, settings.options.sources):
        return False
    wanted = len(base.units)
    granted = allowance.take(wanted)
    if granted < wanted:
        # Over the budget: discovery decides which units fail, as it would have.
        allowance.used -= granted
        return False
    carry.clusters += 1
    return True


def _kept_options(renderer: UnitRenderer, settings: RenderSettings) -> tuple[object, ...] | None:
    """What a kept cluster's key names besides commit and path, or None if none is kept.

    Not kept when a render may hold what the commit does not name: a remote base, a directory
    given for a source (their content is no file of the commit).
    """
    options = settings.options
    if options.allowed_remotes or options.sources:
        return None
    named = dataclasses.replace(options, jobs=0, work_root=None)
    return (*renderer.tool_ids(), kept_clusters.fingerprint(named))


def _kept_key(tree: Tree, path: str, options: tuple[object, ...] | None) -> str | None:
    """The key a cluster's discovery at this revision is kept under, or None if it is not kept."""
    return None if options is None else kept_clusters.key(tree.revision, flux_path(path), options)


def _granted(wanted: int, allowance: discovery.UnitAllowance) -> bool:
    """Count a kept cluster's units against the revision's allowance, if it has room for all."""
    granted = allowance.take(wanted)
    if granted < wanted:
        # Over the budget: discovery decides which units fail, as it would have.
        allowance.used -= granted
        return False
    return True


def _recheck(
    selection: affected.Selection,
    clusters: Sequence[str],
    base_renders: Mapping[str, ClusterRender],
    head_renders: Mapping[str, ClusterRender],
    say: Progress,
) -> list[str]:
    """The clusters whose proofs did not hold once both sides were discovered."""
    again = []
    for path in clusters:
        reason = selection.recheck(path, base_renders.get(path), head_renders.get(path))
        if reason is not None:
            say(f"changed-only: {path} is rendered in full ({reason})")
            again.append(path)
    return again


def base_config(repo: Repository, base_tree: Tree) -> FetchConfig:
    """Return the `fetch:` settings of `.tidegate.yaml` at the base revision (empty if none)."""
    if not base_tree.is_file(CONFIG_FILE):
        return FetchConfig()
    return parse_fetch_config(repo.read_file(base_tree, CONFIG_FILE), file=CONFIG_FILE)


def _source_hosts(renders: Mapping[str, ClusterRender]) -> set[str]:
    """Allow-list entries for every Flux source URL rendered at a revision."""
    # A kept cluster names its URLs: its renders are not read for them.
    urls = [url for cluster in renders.values() for url in kept_clusters.source_urls(cluster)]
    hosts = set()
    for url in urls:
        try:
            hosts.add(allow_list_entry_of(url))
        except FetchError:
            continue  # not an http(s) or oci URL (ssh, a typo): nothing to fetch from
    return hosts


def _clusters(
    repo: Repository, request: PreviewRequest, base_tree: Tree, head_tree: Tree
) -> list[str]:
    """The entry points to preview; an error when there is nothing to preview."""
    if not request.clusters:
        at_base = find_clusters(repo, base_tree)
        changed = head_tree.changes_against(base_tree)
        top = f"{discovery.CLUSTERS_DIR}/"
        if changed is not None and not any(path.startswith(top) for path in changed):
            at_head = at_base  # the answer depends on the files under clusters/ alone
        else:
            at_head = find_clusters(repo, head_tree)
        found = sorted(set(at_base) | set(at_head))
        if not found:
            raise InputError(
                f"no cluster entry point found: no directory under {discovery.CLUSTERS_DIR}/ "
                "holds a Flux Kustomization at the base or the head; name one with --path"
            )
        return found
    for path in request.clusters:
        directory = flux_path(path)
        if not (_has_flux(repo, base_tree, directory) or _has_flux(repo, head_tree, directory)):
            raise InputError(
                f"--path {path}: no Flux Kustomization (kustomize.toolkit.fluxcd.io/v1) in this "
                "directory at the base or the head, so there is nothing to preview"
            )
    return list(request.clusters)


def _has_flux(repo: Repository, tree: Tree, directory: str) -> bool:
    """Tell whether a directory holds a Flux Kustomization at a revision (a cheap text test)."""
    if not tree.is_dir(directory):
        return False
    return any(
        path.endswith((".yaml", ".yml"))
        and _FLUX_KUSTOMIZATION.search(repo.read_file(tree, path)) is not None
        for path in tree.walk(directory)
    )


def find_clusters(repo: Repository, tree: Tree) -> list[str]:
    """Return the directories under clusters/ that hold Flux Kustomizations at a revision.

    The answer depends only on the files under clusters/, which their paths and blob ids name
    for good: it is kept per process by their digest (a preview's head usually has the base's,
    and a long-lived process sees the same base again), and the files are read only the first
    time.
    """
    top = discovery.CLUSTERS_DIR
    files = tree.digest(tree.walk(top) if tree.is_dir(top) else ())
    with _CLUSTERS_LOCK:
        found = _CLUSTERS.get(files)
    if found is not None:
        return list(found)

    def has_flux(directory: str) -> bool:
        return _has_flux(repo, tree, directory)

    def listdir(directory: str) -> list[str]:
        if not tree.is_dir(directory):
            return []
        return [name for name in tree.listdir(directory) if tree.is_dir(f"{directory}/{name}")]

    paths = discovery.find_cluster_paths(listdir, has_flux)
    with _CLUSTERS_LOCK:
        if len(_CLUSTERS) >= _CLUSTERS_KEPT:
            del _CLUSTERS[next(iter(_CLUSTERS))]  # the oldest
        _CLUSTERS[files] = tuple(paths)
    return paths


def render_revision(
    repo: Repository,
    tree: Tree,
    clusters: Sequence[str],
    settings: RenderSettings,
    *,
    specs: discovery.SpecCache | None = None,
    pool: ThreadPoolExecutor | None = None,
    selection: affected.Selection | None = None,
    allowance: discovery.UnitAllowance | None = None,
    carry: Carry | None = None,
    inherit: Mapping[str, ClusterRender] | None = None,
) -> dict[str, ClusterRender]:
    """Discover and render every unit of each cluster present at one revision.

    With a `selection`, units it proves unchanged are not rendered (see `core.render.affected`);
    the base must be rendered before the head, as the head reuses the base's proofs. With a
    `carry`, the head takes the base's renders the change cannot reach (`core.render.carry`),
    and the base's whole cluster (from `inherit`) where the change reaches none of its units.
    """
    blobs = repo.read_blob
    if selection is not None and selection.side == "base":
        # The base may walk every unit's inputs: then the files walks read are read in a few
        # round trips, once the first walk starts (a warm cache may need no walk at all).
        prefetched = _Prefetched(repo, tree)
        selection.on_walk = prefetched.fill
        blobs = prefetched
    renderer = UnitRenderer(
        settings, Artifacts(tree, blobs), pool=pool, selection=selection, carry=carry
    )
    allowance = allowance or discovery.UnitAllowance(settings.options.budgets)
    # The same for every cluster of the revision: worked out once, if a cluster needs it.
    kept_options = functools.cache(lambda: _kept_options(renderer, settings))
    renders = {}
    try:
        for path in clusters:
            if not tree.is_dir(flux_path(path)):
                continue
            if selection is not None:
                selection.begin(path)
            base = inherit.get(path) if inherit is not None and carry is not None else None
            if (
                base is not None
                and carry is not None
                and _carried(base, carry, settings, allowance)
            ):
                renders[path] = base
                continue
            key = _kept_key(tree, path, kept_options()) if selection is None else None
            kept = kept_clusters.load(settings.cache, key, flux_path(path)) if key else None
            if kept is not None and _granted(len(kept.units), allowance):
                renders[path] = kept
                if carry is not None:
                    for carry_key, render in kept_clusters.to_carry(kept):
                        carry.keep(carry_key, render)
                continue
            settings.observer.discovered.append(f"{tree.revision} {flux_path(path)}")
            found = discovery.discover_cluster(path, renderer, specs, allowance=allowance)
            renders[path] = found
            if key and kept_clusters.clusterable(found, settings.options.sources):
                renders[path] = kept_clusters.save(settings.cache, key, found)
        return renders
    finally:
        renderer.close()
