"""The preview use case: what merging head into base does to every cluster of a repository.

This is the one function both the command line and the pull-request app call: resolve the two
revisions, find the cluster entry points, discover and render every unit of each cluster at each
revision (through the shared render cache, so unchanged units cost a lookup), and hand both sides
to the planner. It formats nothing and prints nothing.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from core.changes import Preview
from core.fetch import FetchError, allow_list_entry_of
from core.model import FLUX_SOURCE_GROUP
from core.plan import plan
from core.render.unit import RenderSettings, UnitRenderer
from core.repo import discovery
from core.repo.git import Repository, Tree
from core.repo.source import GitSource
from core.units import ClusterRender

__all__ = ["PreviewRequest", "find_clusters", "render_revision", "run_preview", "source_hosts"]

# A cheap test for "this directory holds Flux Kustomizations", without parsing YAML.
_FLUX_KUSTOMIZATION = re.compile(rb"kustomize\.toolkit\.fluxcd\.io/v1")

Progress = Callable[[str], None]
_URL_SOURCES = frozenset({"HelmRepository", "OCIRepository"})


@dataclass(frozen=True)
class PreviewRequest:
    """What to compare."""

    base: str
    """Base revision; empty means the merge base of head and the default branch."""
    head: str
    clusters: tuple[str, ...] = ()
    """Cluster entry points; empty means every directory under clusters/ holding Flux objects."""


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
    specs = discovery.SpecCache()
    base_tree, head_tree = repo.tree(base), repo.tree(head)
    clusters = list(request.clusters) or sorted(
        set(find_clusters(repo, base_tree)) | set(find_clusters(repo, head_tree))
    )
    # The base revision is already merged: the sources it names are trusted. Head may reach those
    # and the operator's allow-list, nothing else.
    trusting = replace(settings.fetch_policy, allowed_hosts=None)
    with ThreadPoolExecutor(max(1, settings.jobs), thread_name_prefix="render") as pool:
        say(f"base {base[:12]}")
        base_renders = render_revision(
            repo,
            base_tree,
            clusters,
            replace(settings, fetch_policy=trusting),
            specs=specs,
            pool=pool,
        )
        head_policy = settings.fetch_policy.allowing(source_hosts(base_renders.values()))
        say(f"head {head[:12]}")
        head_renders = render_revision(
            repo,
            head_tree,
            clusters,
            replace(settings, fetch_policy=head_policy),
            specs=specs,
            pool=pool,
        )
    return plan.plan_preview(base, head, base_renders, head_renders)


def source_hosts(renders: Iterable[ClusterRender]) -> set[str]:
    """Return the `host:port` of every chart repository and OCI registry the renders name."""
    hosts: set[str] = set()
    for cluster in renders:
        for unit in cluster.units.values():
            for ref in unit.objects or {}:
                if ref.group != FLUX_SOURCE_GROUP or ref.kind not in _URL_SOURCES:
                    continue
                url = (unit.objects or {})[ref].body.get("spec", {}).get("url")
                with contextlib.suppress(FetchError):
                    hosts.add(allow_list_entry_of(str(url or "")))
    return hosts


def find_clusters(repo: Repository, tree: Tree) -> list[str]:
    """Return the directories under clusters/ that hold Flux Kustomizations at a revision."""

    def has_flux(directory: str) -> bool:
        return any(
            path.endswith((".yaml", ".yml"))
            and _FLUX_KUSTOMIZATION.search(repo.read_file(tree, path)) is not None
            for path in tree.walk(directory)
        )

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
    renderer = UnitRenderer(settings, GitSource(repo, tree), tree, pool=pool)
    try:
        return {
            path: discovery.discover_cluster(path, renderer, specs)
            for path in clusters
            if tree.is_dir(discovery.normalize_path(path))
        }
    finally:
        renderer.close()
