"""Fixtures for the reconciler's acceptance tests: Flux CRDs, a Flux-style repository, a driver.

Everything is real: the local control plane with the shipped Flux CRDs, the local git server
holding the repository, `git archive` artifacts served over loopback HTTP, the pinned kustomize,
the staged server-side apply, kstatus health checks and the event recorder. Each test gets its
own Flux namespace and its own application namespaces, so tests do not see each other.
"""

from __future__ import annotations

import contextlib
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from core.cluster.fluxobjects import LiveCluster as FluxObjects
from core.cluster.live import LiveCluster, connect
from core.secrets import Masker
from core.sources.artifact import artifact_policy
from reconciler import crds
from reconciler.events import EventRecorder
from reconciler.kustomization.artifact import ArtifactCache, HttpDownloader
from reconciler.kustomization.deps import Deps, Options, Owner
from reconciler.kustomization.engines import LiveEngines, PortReader
from reconciler.notification.event import Event
from tests.cluster.kube import apply, eventually, unique_name
from tests.fixtures.gitserver import RemoteRepo, commit, git
from tests.reconcile.driver import Driver
from tests.reconcile.shelf import ArtifactShelf


def _established(kube_client: Any, name: str) -> bool:
    crd = k8s.ApiextensionsV1Api(kube_client).read_custom_resource_definition(name)
    conditions = (crd.status and crd.status.conditions) or []
    return any(c.type == "Established" and c.status == "True" for c in conditions)


@pytest.fixture(scope="session")
def flux_crds(dynamic_client: Any, kube_client: Any) -> None:
    """The shipped GitRepository and Kustomization CRDs, Established."""
    install_shipped_crds(dynamic_client, kube_client)


def install_shipped_crds(dynamic_client: Any, kube_client: Any) -> None:
    """Apply the shipped CRDs (again: other tests of the session install open-schema ones)."""
    for crd in crds.documents():
        apply(dynamic_client, crd)
        name = crd["metadata"]["name"]
        eventually(lambda name=name: _established(kube_client, name), f"CRD {name} established")
    dynamic_client.resources.invalidate_cache()


@pytest.fixture(scope="session")
def shelf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArtifactShelf]:
    """The artifact server (source-controller's storage), for the whole session."""
    served = ArtifactShelf(tmp_path_factory.mktemp("artifacts"))
    served.start()
    yield served
    served.stop()


@pytest.fixture(scope="session")
def cluster(control_plane: Any) -> Iterator[LiveCluster]:
    """The cluster port, as the reconciler's own (admin) identity."""
    live = LiveCluster(connect(control_plane.admin_kubeconfig))
    yield live
    live.close()


class RecordingEngines:
    """The real engines, remembering the objects each Kustomization last applied."""

    def __init__(self, inner: LiveEngines) -> None:
        self.inner = inner
        self.applied: dict[str, list[Any]] = {}

    def masked(self, name: str, key: bytes) -> list[dict[str, Any]]:
        """What `name` applied, masked as the preview masks with `key`."""
        masker = Masker(key)
        return [obj.masked(masker).body for obj in self.applied[name]]

    def apply(
        self,
        objects: Sequence[Any],
        *,
        owner: Owner,
        service_account: str | None,
        force: bool,
        ignore: Sequence[Any] = (),
    ) -> Any:
        self.applied[owner.name] = list(objects)
        return self.inner.apply(
            objects, owner=owner, service_account=service_account, force=force, ignore=ignore
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@dataclass
class Flux:
    """One test's Flux installation: its namespace, repository, artifacts and driver."""

    namespace: str
    apps_namespace: str
    repo: RemoteRepo
    work: Path
    kube_client: Any
    shelf: ArtifactShelf
    driver: Driver
    engines: RecordingEngines
    events: list[Event] = field(default_factory=list)

    def commit(self, files: Mapping[str, str | None], message: str = "change") -> str:
        """Commit (dedented text, None deletes), push, publish the artifact; the revision."""
        commit(
            self.work,
            {
                path: None if text is None else textwrap.dedent(text).lstrip("\n").encode()
                for path, text in files.items()
            },
            message,
        )
        git("push", "--quiet", self.repo.push_url, "HEAD:main", cwd=self.work)
        return self.shelf.publish(
            self.kube_client, self.work, namespace=self.namespace, name="flux-system"
        )

    def kustomization(self, name: str, **spec: Any) -> None:
        """Create a Kustomization in the Flux namespace (as `flux create ks` would)."""
        body = {
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "kind": "Kustomization",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": {
                "interval": "10m",
                "prune": True,
                "sourceRef": {"kind": "GitRepository", "name": "flux-system"},
                **spec,
            },
        }
        k8s.CustomObjectsApi(self.kube_client).create_namespaced_custom_object(
            "kustomize.toolkit.fluxcd.io", "v1", self.namespace, "kustomizations", body
        )

    def create_apps_namespace(self) -> None:
        """Create the test's application namespace (when no Kustomization makes it)."""
        k8s.CoreV1Api(self.kube_client).create_namespace(
            {"metadata": {"name": self.apps_namespace}}
        )

    def get(self, name: str) -> dict[str, Any]:
        """The Kustomization as the API server has it."""
        return self.driver.get(self.namespace, name)

    def condition(self, name: str, kind: str = "Ready") -> dict[str, Any]:
        """One condition of a Kustomization (fails the test when absent)."""
        for item in (self.get(name).get("status") or {}).get("conditions") or []:
            if item["type"] == kind:
                return dict(item)
        raise AssertionError(f"{name} has no {kind} condition: {self.get(name).get('status')}")


@pytest.fixture
def flux(
    flux_crds: None,
    kube_client: Any,
    cluster: LiveCluster,
    shelf: ArtifactShelf,
    git_remote: RemoteRepo,
    kustomize_bin: Path,
    tmp_path: Path,
) -> Iterator[Flux]:
    """A Flux namespace with a GitRepository `flux-system` on a fresh repository."""
    core = k8s.CoreV1Api(kube_client)
    namespace = unique_name("flux")
    apps = unique_name("apps")
    core.create_namespace({"metadata": {"name": namespace}})
    k8s.CustomObjectsApi(kube_client).create_namespaced_custom_object(
        "source.toolkit.fluxcd.io",
        "v1",
        namespace,
        "gitrepositories",
        {
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "GitRepository",
            "metadata": {"name": "flux-system", "namespace": namespace},
            "spec": {"url": git_remote.url, "interval": "1m", "ref": {"branch": "main"}},
        },
    )
    work = tmp_path / "work"
    work.mkdir()
    git("init", "--quiet", "--initial-branch=main", cwd=work)
    events: list[Event] = []
    engines = RecordingEngines(LiveEngines(cluster, health_interval=1.0))
    deps = Deps(
        objects=PortReader(cluster),
        artifacts=ArtifactCache(
            HttpDownloader(artifact_policy(allow_loopback=True)), tmp_path / "artifacts"
        ),
        engines=engines,
        events=EventRecorder(FluxObjects(kube_client), [events.append], instance="tidegate-0"),
        options=Options(kustomize=kustomize_bin, work_root=tmp_path),
    )
    yield Flux(
        namespace=namespace,
        apps_namespace=apps,
        repo=git_remote,
        work=work,
        kube_client=kube_client,
        shelf=shelf,
        driver=Driver(kube_client, deps),
        engines=engines,
        events=events,
    )
    # No controller runs after the test: let go of the finalizers so the namespace can go.
    custom = k8s.CustomObjectsApi(kube_client)
    listed = custom.list_namespaced_custom_object(
        "kustomize.toolkit.fluxcd.io", "v1", namespace, "kustomizations"
    )
    for item in listed["items"]:
        custom.patch_namespaced_custom_object(
            "kustomize.toolkit.fluxcd.io",
            "v1",
            namespace,
            "kustomizations",
            item["metadata"]["name"],
            {"metadata": {"finalizers": None}},
        )
    for name in (namespace, apps):
        with contextlib.suppress(k8s.ApiException):
            core.delete_namespace(name)
