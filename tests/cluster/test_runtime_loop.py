"""The reconcile loop against the real apiserver, driven by a trivial reconcile function.

The loop is proven on its own here: what enqueues an object (Flux's predicates and a source's
new artifact), one reconcile in flight per object, requeue-after, backoff on error, deletes,
resuming after a 410, and that a no-op reconcile makes no per-object GET.
"""

from __future__ import annotations

import collections
import threading
from typing import Any

import pytest
from kubernetes import client as k8s

from core.cluster.fluxobjects import GIT_REPOSITORY, KUSTOMIZATION, FluxKind
from core.cluster.watch import Lister
from reconciler.loop import Controller, Loop, ObjectRef
from reconciler.metrics import Metrics
from reconciler.triggers import source_revision_watch
from reconciler.workqueue import Backoff
from tests.cluster.fluxcrds import install_flux_crds
from tests.cluster.kube import eventually

pytestmark = pytest.mark.cluster

Obj = dict[str, Any]


class Recorder:
    """A trivial reconcile: counts calls per object and tracks how many run at once."""

    def __init__(self, requeue: float | None = None, hold: float = 0.0) -> None:
        self.calls: collections.Counter[str] = collections.Counter()
        self.deleted: list[str] = []
        self.requeue, self.hold = requeue, hold
        self.fail: set[str] = set()
        self.in_flight: collections.Counter[str] = collections.Counter()
        self.max_in_flight = 0
        self._lock = threading.Lock()

    def reconcile(self, obj: Obj) -> float | None:
        name = obj["metadata"]["name"]
        with self._lock:
            self.calls[name] += 1
            self.in_flight[name] += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight[name])
        try:
            threading.Event().wait(self.hold)
            if name in self.fail:
                raise RuntimeError(f"{name} failed on purpose")
            return self.requeue
        finally:
            with self._lock:
                self.in_flight[name] -= 1

    def on_deleted(self, namespace: str, name: str) -> None:
        self.deleted.append(name)


def _ks(name: str, source: str = "repo") -> Obj:
    return {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": name},
        "spec": {
            "interval": "10m",
            "path": "./",
            "prune": True,
            "sourceRef": {"kind": "GitRepository", "name": source},
        },
    }


def _repo(name: str) -> Obj:
    return {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": {"name": name},
        "spec": {"interval": "1m", "url": "https://example.invalid/repo.git"},
    }


class Cluster:
    """Create and change Flux objects in one namespace."""

    def __init__(self, api: Any, namespace: str) -> None:
        self.api, self.namespace = k8s.CustomObjectsApi(api), namespace

    def create(self, kind: FluxKind, body: Obj) -> None:
        self.api.create_namespaced_custom_object(
            kind.group, kind.version, self.namespace, kind.plural, body
        )

    def patch(self, kind: FluxKind, name: str, patch: Obj) -> None:
        self.api.patch_namespaced_custom_object(
            kind.group, kind.version, self.namespace, kind.plural, name, patch
        )

    def patch_status(self, kind: FluxKind, name: str, status: Obj) -> None:
        self.api.patch_namespaced_custom_object_status(
            kind.group, kind.version, self.namespace, kind.plural, name, {"status": status}
        )

    def delete(self, kind: FluxKind, name: str) -> None:
        self.api.delete_namespaced_custom_object(
            kind.group, kind.version, self.namespace, kind.plural, name
        )


@pytest.fixture
def flux(dynamic_client: Any, kube_client: Any, namespace: str) -> Cluster:
    install_flux_crds(dynamic_client)
    return Cluster(kube_client, namespace)


@pytest.fixture
def lister(kube_client: Any) -> Lister:
    return Lister(kube_client)


class Running:
    """A loop running in a thread until the test ends."""

    def __init__(self, loop: Loop) -> None:
        self.loop, self.stop = loop, threading.Event()
        self.thread = threading.Thread(target=loop.run, args=(self.stop,), daemon=True)

    def __enter__(self) -> Loop:
        self.thread.start()
        eventually(self.loop.synced, "the loop's caches to sync")
        return self.loop

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive(), "the loop did not stop"


def _loop(lister: Lister, namespace: str, recorder: Recorder, **kwargs: Any) -> Loop:
    return Loop(
        lister,
        [
            Controller(
                KUSTOMIZATION,
                recorder.reconcile,
                recorder.on_deleted,
                watches=(source_revision_watch(GIT_REPOSITORY),),
            )
        ],
        namespace=namespace,
        **kwargs,
    )


def _idle(loop: Loop) -> bool:
    return len(loop.queue) == 0


def test_adds_spec_changes_and_requests_enqueue_but_status_writes_do_not(
    flux: Cluster, lister: Lister, namespace: str
) -> None:
    flux.create(GIT_REPOSITORY, _repo("repo"))
    flux.create(KUSTOMIZATION, _ks("apps"))
    flux.create(KUSTOMIZATION, _ks("other", source="elsewhere"))
    recorder = Recorder()
    with Running(_loop(lister, namespace, recorder)) as loop:
        eventually(lambda: recorder.calls == {"apps": 1, "other": 1}, "one reconcile each")

        # A status write (what a reconcile does) is not a reason to reconcile again.
        flux.patch_status(KUSTOMIZATION, "apps", {"observedGeneration": 1})
        eventually(
            lambda: (loop.cache.get(KUSTOMIZATION, namespace, "apps") or {}).get("status"),
            "the status in the cache",
        )
        # A spec change of another object is seen after the status event (one ordered watch).
        flux.patch(KUSTOMIZATION, "other", {"spec": {"path": "./other"}})
        eventually(lambda: recorder.calls["other"] == 2, "the spec change to reconcile")
        eventually(lambda: _idle(loop), "an idle queue")
        assert recorder.calls["apps"] == 1

        flux.patch(
            KUSTOMIZATION,
            "apps",
            {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "now"}}},
        )
        eventually(lambda: recorder.calls["apps"] == 2, "requestedAt to reconcile")

        # A new artifact of the source enqueues the Kustomizations that use it, and only those.
        flux.patch_status(
            GIT_REPOSITORY, "repo", {"artifact": {"revision": "main@sha1:" + "a" * 40}}
        )
        eventually(lambda: recorder.calls["apps"] == 3, "the new artifact to reconcile apps")
        flux.patch(KUSTOMIZATION, "other", {"spec": {"path": "./again"}})
        eventually(lambda: recorder.calls["other"] == 3, "a later event")
        eventually(lambda: _idle(loop), "an idle queue")
        assert recorder.calls["apps"] == 3

        flux.delete(KUSTOMIZATION, "apps")
        eventually(lambda: recorder.deleted == ["apps"], "the delete to be handled")
        assert recorder.calls["apps"] == 3


def test_one_reconcile_in_flight_per_object_with_requeue_after(
    flux: Cluster, lister: Lister, namespace: str
) -> None:
    for name in ("a", "b", "c"):
        flux.create(KUSTOMIZATION, _ks(name))
    recorder = Recorder(requeue=0.01, hold=0.02)
    with Running(_loop(lister, namespace, recorder, concurrent=4)) as loop:
        eventually(lambda: min(recorder.calls[n] for n in "abc") >= 10, "requeues of every object")
        # Requests landing while an object is being reconciled are deferred, not run beside it.
        for i in range(5):
            flux.patch(KUSTOMIZATION, "a", {"spec": {"path": f"./{i}"}})
        eventually(lambda: recorder.calls["a"] >= 20, "more requeues")
    assert loop.reconciles >= 30
    assert recorder.max_in_flight == 1


def test_a_failing_reconcile_is_retried_with_backoff_and_others_go_on(
    flux: Cluster, lister: Lister, namespace: str
) -> None:
    flux.create(KUSTOMIZATION, _ks("bad"))
    flux.create(KUSTOMIZATION, _ks("good"))
    recorder = Recorder()
    recorder.fail.add("bad")
    backoff: Backoff[ObjectRef] = Backoff(min_delay=0.01, max_delay=0.05)
    with Running(_loop(lister, namespace, recorder, backoff=backoff)) as loop:
        eventually(lambda: recorder.calls["bad"] >= 5, "retries of the failing object")
        eventually(lambda: recorder.calls["good"] == 1, "the good object")
        recorder.fail.clear()
        eventually(lambda: backoff.failures(_ref(loop, "bad")) == 0, "the backoff to reset")
    assert recorder.calls["good"] == 1


def _ref(loop: Loop, name: str) -> ObjectRef:
    namespace = loop.cache.list(KUSTOMIZATION)[0]["metadata"]["namespace"]
    return ObjectRef(KUSTOMIZATION, namespace, name)


def test_a_410_gone_relists_and_catches_up(flux: Cluster, lister: Lister, namespace: str) -> None:
    flux.create(KUSTOMIZATION, _ks("first"))
    recorder = Recorder()
    with Running(_loop(lister, namespace, recorder)) as loop:
        eventually(lambda: recorder.calls["first"] == 1, "the first reconcile")
        informer = (
            loop.informers[0] if loop.informers[0].kind == KUSTOMIZATION else loop.informers[1]
        )
        assert informer.lists == 1
        # A resourceVersion older than anything the apiserver keeps: the next watch gets 410.
        # The watch is broken as a dropped connection would break it, and an object is created
        # before the informer watches again.
        eventually(lambda: lister.watching() == 2, "both watches to be open")
        informer.resource_version = "1"
        lister.close()
        flux.create(KUSTOMIZATION, _ks("second"))
        polls = 0

        def relisted() -> bool:
            # An event the informer reads between the two lines above stores a newer
            # resourceVersion, and it then watches again without a 410: break it once more
            # every ten seconds or so until the 410 comes.
            nonlocal polls
            polls += 1
            if informer.lists < 2 and polls % 40 == 0:
                informer.resource_version = "1"
                lister.close()
            return informer.lists >= 2

        eventually(relisted, "a relist after 410 Gone")
        eventually(lambda: recorder.calls["second"] == 1, "the object created meanwhile")
        flux.patch(KUSTOMIZATION, "first", {"spec": {"path": "./moved"}})
        eventually(lambda: recorder.calls["first"] == 2, "watching again after the relist")


def test_a_noop_reconcile_makes_no_per_object_get(
    flux: Cluster, lister: Lister, namespace: str, kube_client: Any
) -> None:
    for i in range(5):
        flux.create(KUSTOMIZATION, _ks(f"ks-{i}"))
    recorder = Recorder(requeue=0.01)
    metrics = Metrics()
    with Running(_loop(lister, namespace, recorder, metrics=metrics)) as loop:
        eventually(lambda: loop.reconciles >= 20, "a few no-op rounds")
        before = _gets(kube_client)
        start = loop.reconciles
        eventually(lambda: loop.reconciles >= start + 100, "100 more no-op reconciles")
        after = _gets(kube_client)
    assert after == before
    exposition = metrics.exposition().decode()
    assert (
        f'gotk_reconcile_duration_seconds_count{{kind="Kustomization",name="ks-0",namespace="{namespace}"}}'
        in exposition
    )


def _gets(api: Any) -> float:
    """GETs of single Kustomizations the apiserver has served (its own request counter)."""
    text = api.call_api("/metrics", "GET", auth_settings=["BearerToken"], _preload_content=False)[
        0
    ].data.decode()
    total = 0.0
    for line in text.splitlines():
        if (
            line.startswith("apiserver_request_total{")
            and 'resource="kustomizations"' in line
            and 'verb="GET"' in line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_informer_cache_sees_only_the_selected_shard(
    flux: Cluster, lister: Lister, namespace: str
) -> None:
    mine = _ks("mine")
    mine["metadata"]["labels"] = {"sharding.fluxcd.io/key": "shard1"}
    flux.create(KUSTOMIZATION, mine)
    flux.create(KUSTOMIZATION, _ks("theirs"))
    recorder = Recorder()
    loop = _loop(lister, namespace, recorder, label_selector="sharding.fluxcd.io/key in (shard1)")
    with Running(loop):
        eventually(lambda: recorder.calls["mine"] == 1, "the shard's object")
        flux.patch(KUSTOMIZATION, "mine", {"spec": {"path": "./x"}})
        eventually(lambda: recorder.calls["mine"] == 2, "a later event")
    assert "theirs" not in recorder.calls


def test_a_shard_sees_unlabelled_sources_but_reconciles_only_its_own(
    flux: Cluster, lister: Lister, namespace: str
) -> None:
    shard = {"sharding.fluxcd.io/key": "shard1"}
    mine = _ks("mine", source="shared")
    mine["metadata"]["labels"] = shard
    flux.create(KUSTOMIZATION, mine)
    flux.create(GIT_REPOSITORY, _repo("shared"))  # no shard label, as most sources have none
    labelled = _repo("own")
    labelled["metadata"]["labels"] = shard
    flux.create(GIT_REPOSITORY, labelled)
    kustomizations, sources = Recorder(), Recorder()
    metrics = Metrics()
    loop = Loop(
        lister,
        [
            Controller(
                KUSTOMIZATION,
                kustomizations.reconcile,
                watches=(source_revision_watch(GIT_REPOSITORY),),
            ),
            Controller(GIT_REPOSITORY, sources.reconcile),
        ],
        namespace=namespace,
        label_selector="sharding.fluxcd.io/key in (shard1)",
        metrics=metrics,
    )
    with Running(loop):
        eventually(lambda: kustomizations.calls["mine"] == 1, "the shard's Kustomization")
        eventually(lambda: sources.calls["own"] == 1, "the shard's own GitRepository")
        # The unlabelled source is in the cache for the Kustomization to read ...
        assert loop.cache.get(GIT_REPOSITORY, namespace, "shared") is not None
        # ... and its new artifact reaches the shard's Kustomization.
        flux.patch_status(GIT_REPOSITORY, "shared", {"artifact": {"revision": "main@sha1:1"}})
        eventually(lambda: kustomizations.calls["mine"] == 2, "the source's new artifact")
        flux.patch(GIT_REPOSITORY, "own", {"spec": {"interval": "2m"}})
        eventually(lambda: sources.calls["own"] == 2, "a change of the shard's source")
        # Events of one kind arrive in order and the queue is first in, first out: once the
        # later change of "own" is reconciled, the change of "shared" has been handed out too.
        flux.patch(GIT_REPOSITORY, "shared", {"spec": {"interval": "3m"}})
        flux.patch(GIT_REPOSITORY, "own", {"spec": {"interval": "3m"}})
        eventually(lambda: sources.calls["own"] == 3, "the later change of the shard's source")
    # Another replica (the main one) reconciles the unlabelled source, and reports it.
    assert "shared" not in sources.calls
    exposition = metrics.exposition().decode()
    assert 'customresource_kind="GitRepository"' in exposition
    assert ',name="own"' in exposition
    assert ',name="shared"' not in exposition


def test_the_cache_hands_out_copies(flux: Cluster, lister: Lister, namespace: str) -> None:
    flux.create(KUSTOMIZATION, _ks("copy"))
    with Running(_loop(lister, namespace, Recorder())) as loop:
        first = loop.cache.get(KUSTOMIZATION, namespace, "copy")
        assert first is not None
        first["spec"]["path"] = "./changed-by-a-caller"
        again = loop.cache.get(KUSTOMIZATION, namespace, "copy")
        assert again is not None
        assert again["spec"]["path"] == "./"


def test_a_loop_run_again_reconciles_every_object_again(
    flux: Cluster, lister: Lister, namespace: str
) -> None:
    # What a replica does when it regains leadership: run the same loop a second time.
    flux.create(KUSTOMIZATION, _ks("one"))
    flux.create(KUSTOMIZATION, _ks("two"))
    recorder = Recorder()
    loop = _loop(lister, namespace, recorder)
    with Running(loop):
        eventually(lambda: recorder.calls == {"one": 1, "two": 1}, "the first run")
    with Running(loop):
        eventually(lambda: recorder.calls == {"one": 2, "two": 2}, "the second run")
        flux.patch(KUSTOMIZATION, "one", {"spec": {"path": "./again"}})
        eventually(lambda: recorder.calls["one"] == 3, "watching in the second run")
