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
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from core.budgets import Deadline
from core.changes import Preview
from core.config import CONFIG_FILE, FetchConfig, UnavailableSources, parse_fetch_config
from core.errors import InputError
from core.fetch import FetchError, allow_list_entry_of
from core.host.paths import flux_path
from core.model import FLUX_SOURCE_GROUP
from core.plan import plan
from core.render.unit import RenderSettings, UnitRenderer
from core.repo import discovery
from core.repo.artifacts import Artifacts
from core.repo.git import Repository, Tree
from core.units import ClusterRender

__all__ = ["PreviewRequest", "find_clusters", "render_revision", "run_preview"]

# A cheap test for "this directory holds Flux Kustomizations", without parsing YAML.
_FLUX_KUSTOMIZATION = re.compile(rb"kustomize\.toolkit\.fluxcd\.io/v1")

Progress = Callable[[str], None]


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


def run_preview(
    repo: Repository,
    request: PreviewRequest,
    settings: RenderSettings,
    *,
    progress: Progress | None = None,
) -> Preview:
    """Render both revisions and plan the change.

    The sides run one after the other: measured on a 468-unit fleet, running them in two threads
    was slower, because their Python bookkeeping contends for the interpreter lock.
    """
    head = repo.resolve(request.head)
    base = (
        repo.resolve(request.base)
        if request.base
        else repo.merge_base(head, repo.resolve(repo.default_branch()))
    )
    say = progress or (lambda _message: None)
    if settings.deadline is None:
        settings = dataclasses.replace(settings, deadline=Deadline(settings.budgets.timeout))
    specs = discovery.SpecCache()
    base_tree, head_tree = repo.tree(base), repo.tree(head)
    clusters = _clusters(repo, request, base_tree, head_tree)
    config = base_config(repo, base_tree)
    trusted = dataclasses.replace(
        settings, fetch_policy=dataclasses.replace(settings.fetch_policy, allowed_hosts=None)
    )
    with ThreadPoolExecutor(max(1, settings.jobs), thread_name_prefix="render") as pool:
        say(f"base {base[:12]}")
        base_renders = render_revision(repo, base_tree, clusters, trusted, specs=specs, pool=pool)
        used = _source_hosts(base_renders) | settings.chart_puller.hosts_used
        policy = settings.fetch_policy.allowing([*used, *config.allow_hosts])
        head_settings = dataclasses.replace(settings, fetch_policy=policy)
        say(f"head {head[:12]}")
        head_renders = render_revision(
            repo, head_tree, clusters, head_settings, specs=specs, pool=pool
        )
    mode = request.unavailable_sources or config.unavailable_sources or UnavailableSources.FAIL
    return dataclasses.replace(
        plan.plan_preview(base, head, base_renders, head_renders),
        skip_unavailable=mode is UnavailableSources.SKIP,
    )


def base_config(repo: Repository, base_tree: Tree) -> FetchConfig:
    """Return the `fetch:` settings of `.tidegate.yaml` at the base revision (empty if none)."""
    if not base_tree.is_file(CONFIG_FILE):
        return FetchConfig()
    return parse_fetch_config(repo.read_file(base_tree, CONFIG_FILE), file=CONFIG_FILE)


def _source_hosts(renders: Mapping[str, ClusterRender]) -> set[str]:
    """Allow-list entries for every Flux source URL rendered at a revision."""
    urls: list[str] = []
    for cluster in renders.values():
        for unit in cluster.units.values():
            urls.extend(_urls(manifest.body for manifest in (unit.objects or {}).values()))
    hosts = set()
    for url in urls:
        try:
            hosts.add(allow_list_entry_of(url))
        except FetchError:
            continue  # not an http(s) or oci URL (ssh, a typo): nothing to fetch from
    return hosts


def _urls(objects: Iterable[Mapping[str, object]]) -> Iterable[str]:
    for body in objects:
        api = str(body.get("apiVersion") or "")
        spec = body.get("spec")
        if api.startswith(FLUX_SOURCE_GROUP + "/") and isinstance(spec, Mapping):
            url = spec.get("url")
            if isinstance(url, str):
                yield url


def _clusters(
    repo: Repository, request: PreviewRequest, base_tree: Tree, head_tree: Tree
) -> list[str]:
    """The entry points to preview; an error when there is nothing to preview."""
    if not request.clusters:
        found = sorted(set(find_clusters(repo, base_tree)) | set(find_clusters(repo, head_tree)))
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
    """Return the directories under clusters/ that hold Flux Kustomizations at a revision."""

    def has_flux(directory: str) -> bool:
        return _has_flux(repo, tree, directory)

    def listdir(directory: str) -> list[str]:
        if not tree.is_dir(directory):
            return []
        return [name for name in tree.listdir(directory) if tree.is_dir(f"{directory}/{name}")]

    return discovery.find_cluster_paths(listdir, has_flux)


def render_revision(
    repo: Repository,
    tree: Tree,
    clusters: Sequence[str],
    settings: RenderSettings,
    *,
    specs: discovery.SpecCache | None = None,
    pool: ThreadPoolExecutor | None = None,
) -> dict[str, ClusterRender]:
    """Discover and render every unit of each cluster present at one revision."""
    renderer = UnitRenderer(settings, Artifacts(tree, repo.read_blob), pool=pool)
    allowance = discovery.UnitAllowance(settings.budgets)
    try:
        return {
            path: discovery.discover_cluster(path, renderer, specs, allowance=allowance)
            for path in clusters
            if tree.is_dir(flux_path(path))
        }
    finally:
        renderer.close()
