"""The Kustomization pipeline end to end over fakes of its cluster seams, with real kustomize.

Each test drives `reconcile_kustomization` and reads the Outcome (status, requeue, finalizer) and
what reached the fakes (applied objects, pruned entries, health targets, events).
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from core.render import kustomize
from reconciler.health import ObjectRef
from reconciler.kustomization import build as build_step
from reconciler.kustomization.model import FinalizerChange, InventoryEntry
from reconciler.pipeline import reconcile_kustomization
from tests.kustomization.fakes import (
    DIGEST,
    REVISION,
    World,
    git_repository,
    kustomization,
    ready,
    world,
)
from tests.render.helpers import write_tree

URL = "http://artifacts.test/repo.tar.gz"
CANARY = "canary-7f3e19-secret-value"


def _tree(root: Path) -> Path:
    return write_tree(
        root,
        {
            "apps/kustomization.yaml": """
                resources: [cm.yaml, deploy.yaml]
            """,
            "apps/cm.yaml": """
                apiVersion: v1
                kind: ConfigMap
                metadata: {name: settings, namespace: apps}
                data: {colour: "${COLOUR:=blue}", token: "${TOKEN:=none}"}
            """,
            "apps/deploy.yaml": """
                apiVersion: apps/v1
                kind: Deployment
                metadata: {name: web, namespace: apps}
                spec:
                  selector: {matchLabels: {app: web}}
                  template:
                    metadata: {labels: {app: web}}
                    spec: {containers: [{name: web, image: nginx}]}
            """,
        },
    )


@pytest.fixture
def w(tmp_path: Path, kustomize_bin: Path) -> World:
    made = world(tmp_path, kustomize_bin)
    made.fetcher.trees[URL] = _tree(tmp_path / "repo")
    made.objects.put(git_repository(url=URL))
    return made


def _condition(status: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions", []) if c["type"] == kind), None)


def test_a_first_reconcile_applies_the_build_and_reports_ready_as_flux(w: World) -> None:
    out = reconcile_kustomization(kustomization(), w.deps)

    assert out.ready
    status = dict(out.status or {})
    ready_condition = _condition(status, "Ready")
    assert ready_condition is not None
    assert ready_condition["status"] == "True"
    assert ready_condition["reason"] == "ReconciliationSucceeded"
    assert ready_condition["message"] == f"Applied revision: {REVISION}"
    assert ready_condition["observedGeneration"] == 1
    assert _condition(status, "Reconciling") is None
    assert _condition(status, "Healthy") is None
    assert status["observedGeneration"] == 1
    assert status["lastAppliedRevision"] == REVISION
    assert status["lastAttemptedRevision"] == REVISION
    assert status["inventory"]["entries"] == [
        {"id": "apps_settings__ConfigMap", "v": "v1"},
        {"id": "apps_web_apps_Deployment", "v": "v1"},
    ]
    [snapshot] = status["history"]
    assert snapshot["lastReconciledStatus"] == "ReconciliationSucceeded"
    assert snapshot["metadata"] == {"revision": REVISION}
    assert snapshot["digest"].startswith("sha256:")
    assert snapshot["totalReconciliations"] == 1
    # The interval, with the clock's jitter at its middle.
    assert out.requeue_after == pytest.approx(600.0)
    [bodies] = w.engines.applied
    labels = bodies[0]["metadata"]["labels"]
    assert labels["kustomize.toolkit.fluxcd.io/name"] == "apps"
    assert labels["kustomize.toolkit.fluxcd.io/namespace"] == "flux-system"
    # Flux's WithVariables strategy: no variable resolved, so no substitution at all.
    assert bodies[0]["data"]["colour"] == "${COLOUR:=blue}"
    messages = [e["message"] for e in w.events.recorded]
    assert "ConfigMap/apps/settings created\nDeployment/apps/web created" in messages
    final = w.events.recorded[-1]
    assert final["message"].startswith("Reconciliation finished in ")
    assert final["message"].endswith("next run in 10m0s")
    assert final["metadata"] == {
        "kustomize.toolkit.fluxcd.io/revision": REVISION,
        "kustomize.toolkit.fluxcd.io/commit_status": "update",
    }


def test_a_second_run_keeps_transition_times_and_bumps_the_history_entry(w: World) -> None:
    first = reconcile_kustomization(kustomization(), w.deps)
    w.clock.time = w.clock.time.replace(hour=9)

    second = reconcile_kustomization(kustomization(status=dict(first.status or {})), w.deps)

    before = _condition(dict(first.status or {}), "Ready")
    after = _condition(dict(second.status or {}), "Ready")
    assert before is not None
    assert after is not None
    assert after["lastTransitionTime"] == before["lastTransitionTime"]
    [snapshot] = (second.status or {})["history"]
    assert snapshot["totalReconciliations"] == 2
    assert snapshot["lastReconciled"] == "2026-01-02T09:04:05Z"
    # Nothing changed, so no change-set event the second time.
    assert not any(" created" in e["message"] for e in w.events.recorded[2:])


def test_a_new_object_gets_the_finalizer(w: World) -> None:
    out = reconcile_kustomization(kustomization(finalizer=False), w.deps)

    assert out.finalizer is FinalizerChange.ADD
    assert out.ready


def test_variables_come_from_configmaps_and_secrets_and_secret_values_stay_out_of_text(
    w: World,
) -> None:
    w.objects.put(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "vars", "namespace": "flux-system"},
            "data": {"COLOUR": "green"},
        }
    )
    w.objects.put(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds", "namespace": "flux-system"},
            "data": {"TOKEN": base64.b64encode(CANARY.encode()).decode()},
        }
    )
    obj = kustomization(
        postBuild={
            "substituteFrom": [
                {"kind": "ConfigMap", "name": "vars"},
                {"kind": "Secret", "name": "creds"},
                {"kind": "ConfigMap", "name": "absent", "optional": True},
            ]
        }
    )

    out = reconcile_kustomization(obj, w.deps)

    assert out.ready
    [bodies] = w.engines.applied
    assert bodies[0]["data"] == {"colour": "green", "token": CANARY}
    assert CANARY not in repr(out)
    assert CANARY not in repr(w.events.recorded)


def test_a_missing_substitute_from_object_is_a_build_failure_with_fluxs_message(w: World) -> None:
    obj = kustomization(postBuild={"substituteFrom": [{"kind": "ConfigMap", "name": "vars"}]})

    out = reconcile_kustomization(obj, w.deps)

    assert out.reason == "BuildFailed"
    assert out.message == "substitute from 'ConfigMap/vars' error: configmaps \"vars\" not found"
    assert not w.engines.applied


def test_a_build_failure_names_the_problem_prunes_nothing_and_scrubs_secret_values(
    w: World, tmp_path: Path
) -> None:
    (tmp_path / "repo/apps/deploy.yaml").write_text("kind: [unclosed ${TOKEN}\n")
    # Other content is another artifact: the source controller gives it another digest.
    w.objects.put(git_repository(url=URL, digest="sha256:" + "b" * 64))
    w.objects.put(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds", "namespace": "flux-system"},
            "data": {"TOKEN": base64.b64encode(CANARY.encode()).decode()},
        }
    )
    previous = {"inventory": {"entries": [{"id": "apps_old__ConfigMap", "v": "v1"}]}}
    obj = kustomization(
        status=previous, postBuild={"substituteFrom": [{"kind": "Secret", "name": "creds"}]}
    )

    out = reconcile_kustomization(obj, w.deps)

    status = dict(out.status or {})
    ready_condition = _condition(status, "Ready")
    assert ready_condition is not None
    assert (ready_condition["status"], ready_condition["reason"]) == ("False", "BuildFailed")
    assert "deploy.yaml" in ready_condition["message"]
    reconciling = _condition(status, "Reconciling")
    assert reconciling is not None
    assert reconciling["reason"] == "ProgressingWithRetry"
    assert _condition(status, "Stalled") is None
    assert status["inventory"] == previous["inventory"]
    assert "observedGeneration" not in status
    assert status["lastAttemptedRevision"] == REVISION
    assert not w.engines.applied
    assert not w.engines.pruned
    assert out.requeue_after == pytest.approx(600.0)
    assert w.events.recorded[-1]["severity"] == "error"
    assert w.events.recorded[-1]["reason"] == "BuildFailed"
    assert CANARY not in repr(out)
    assert CANARY not in repr(w.events.recorded)


def test_objects_removed_from_the_build_are_pruned_after_a_complete_apply(w: World) -> None:
    previous = {
        "inventory": {
            "entries": [
                {"id": "apps_settings__ConfigMap", "v": "v1"},
                {"id": "apps_gone__Service", "v": "v1"},
            ]
        }
    }

    out = reconcile_kustomization(kustomization(status=previous), w.deps)

    assert w.engines.pruned == [[InventoryEntry("apps_gone__Service", "v1")]]
    assert out.ready
    assert "apps_gone__Service deleted" in [e["message"] for e in w.events.recorded]


def test_prune_false_keeps_removed_objects(w: World) -> None:
    previous = {"inventory": {"entries": [{"id": "apps_gone__Service", "v": "v1"}]}}

    out = reconcile_kustomization(kustomization(status=previous, prune=False), w.deps)

    assert out.ready
    assert not w.engines.pruned
    assert {"id": "apps_gone__Service", "v": "v1"} not in (out.status or {})["inventory"]["entries"]


def test_an_apply_rejected_by_the_api_server_prunes_nothing(w: World) -> None:
    w.engines.apply_error = 'Deployment/apps/web dry-run failed (Invalid): spec.replicas: "x"'
    previous = {"inventory": {"entries": [{"id": "apps_gone__Service", "v": "v1"}]}}

    out = reconcile_kustomization(kustomization(status=previous), w.deps)

    assert out.reason == "ReconciliationFailed"
    assert "spec.replicas" in out.message
    assert not w.engines.pruned
    assert (out.status or {})["inventory"] == previous["inventory"]
    [snapshot] = (out.status or {})["history"]
    assert snapshot["lastReconciledStatus"] == "ReconciliationFailed"


def test_a_prune_failure_keeps_the_survivors_in_the_inventory(w: World) -> None:
    w.engines.prune_error = "delete failed, errors: Service/apps/gone: forbidden;"
    previous = {"inventory": {"entries": [{"id": "apps_gone__Service", "v": "v1"}]}}

    out = reconcile_kustomization(kustomization(status=previous), w.deps)

    assert out.reason == "PruneFailed"
    ids = [e["id"] for e in (out.status or {})["inventory"]["entries"]]
    assert "apps_gone__Service" in ids
    assert "apps_web_apps_Deployment" in ids


def test_wait_checks_every_applied_object_and_reports_healthy(w: World) -> None:
    out = reconcile_kustomization(kustomization(wait=True, timeout="2m"), w.deps)

    assert w.engines.waited == [
        [
            ObjectRef("v1", "ConfigMap", "settings", "apps"),
            ObjectRef("apps/v1", "Deployment", "web", "apps"),
        ]
    ]
    healthy = _condition(dict(out.status or {}), "Healthy")
    assert healthy is not None
    assert (healthy["status"], healthy["reason"]) == ("True", "Succeeded")
    assert healthy["message"] == "Health check passed in 1.5s"


def test_health_checks_name_their_targets_and_a_failure_is_health_check_failed(w: World) -> None:
    w.engines.health_error = (
        "health check failed after 30s: timeout waiting for: "
        "[Deployment/apps/web status: 'InProgress']"
    )
    obj = kustomization(
        healthChecks=[
            {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "namespace": "apps"}
        ]
    )

    out = reconcile_kustomization(obj, w.deps)

    assert w.engines.waited == [[ObjectRef("apps/v1", "Deployment", "web", "apps")]]
    assert out.reason == "HealthCheckFailed"
    healthy = _condition(dict(out.status or {}), "Healthy")
    assert healthy is not None
    assert (healthy["status"], healthy["reason"]) == ("False", "HealthCheckFailed")
    assert "lastAppliedRevision" not in (out.status or {})


def test_suspend_skips_everything_but_echoes_requested_at(w: World) -> None:
    obj = kustomization(suspend=True, annotations={"reconcile.fluxcd.io/requestedAt": "now-1"})

    out = reconcile_kustomization(obj, w.deps)

    assert out.requeue_after is None
    assert dict(out.status or {}) == {"lastHandledReconcileAt": "now-1"}
    assert not w.engines.applied
    assert not w.fetcher.fetches


def test_requested_at_is_handled_on_a_normal_run(w: World) -> None:
    obj = kustomization(annotations={"reconcile.fluxcd.io/requestedAt": "2026-01-02T03:04:05Z"})

    out = reconcile_kustomization(obj, w.deps)

    assert (out.status or {})["lastHandledReconcileAt"] == "2026-01-02T03:04:05Z"


def test_service_account_impersonation_and_the_default(tmp_path: Path, kustomize_bin: Path) -> None:
    w = world(tmp_path, kustomize_bin, default_service_account="default")
    w.fetcher.trees[URL] = _tree(tmp_path / "repo")
    w.objects.put(git_repository(url=URL))

    reconcile_kustomization(kustomization(serviceAccountName="deployer"), w.deps)
    reconcile_kustomization(kustomization(name="other"), w.deps)

    assert w.engines.identities == ["deployer", "default"]


def test_the_artifact_is_fetched_once_per_digest(w: World) -> None:
    reconcile_kustomization(kustomization(), w.deps)
    reconcile_kustomization(kustomization(name="other"), w.deps)

    assert w.fetcher.fetches == [URL]


def test_a_second_reconcile_of_the_artifact_copies_no_file_and_runs_no_kustomize(
    w: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The build memo is keyed by the artifact's digest: nothing of the unchanged artifact is
    # copied, hashed or built again.
    first = reconcile_kustomization(kustomization(), w.deps)
    hits = build_step.MEMO.hits

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the artifact's files were copied, hashed or built again")

    for name in ("_materialize", "_build", "memo_key"):
        monkeypatch.setattr(kustomize, name, refuse)
    again = reconcile_kustomization(kustomization(), w.deps)

    assert again.ready
    assert dict(again.status or {})["inventory"] == dict(first.status or {})["inventory"]
    assert build_step.MEMO.hits == hits + 1


def test_a_missing_artifact_is_artifact_failed_retried_after_the_dependency_delay(
    w: World,
) -> None:
    w.fetcher.missing.add(URL)

    out = reconcile_kustomization(kustomization(), w.deps)

    assert out.reason == "ArtifactFailed"
    assert out.message == "Source is not ready, artifact not found, retrying in 30s"
    assert out.requeue_after == pytest.approx(30.0)


def test_a_source_without_artifact_and_a_missing_source(w: World) -> None:
    w.objects.put(git_repository(artifact=False))

    no_artifact = reconcile_kustomization(kustomization(), w.deps)
    missing = reconcile_kustomization(
        kustomization(sourceRef={"kind": "GitRepository", "name": "nope"}), w.deps
    )

    assert no_artifact.reason == "ArtifactFailed"
    assert no_artifact.message == "Source artifact not found, retrying in 30s"
    assert missing.reason == "ArtifactFailed"
    assert missing.message == "Source 'GitRepository/flux-system/nope' not found"
    assert missing.requeue_after == pytest.approx(600.0)


def test_a_missing_path_is_artifact_failed(w: World) -> None:
    out = reconcile_kustomization(kustomization(path="./nowhere"), w.deps)

    assert out.reason == "ArtifactFailed"
    assert out.message == "kustomization path not found: ./nowhere"


def test_cross_namespace_source_refused_when_disabled(tmp_path: Path, kustomize_bin: Path) -> None:
    w = world(tmp_path, kustomize_bin, no_cross_namespace_refs=True)
    obj = kustomization(sourceRef={"kind": "GitRepository", "name": "repo", "namespace": "other"})

    out = reconcile_kustomization(obj, w.deps)

    assert out.reason == "AccessDenied"
    assert out.message == (
        "Reconciliation failed terminally due to configuration error: cannot access "
        "GitRepository/other/repo, cross-namespace references have been disabled"
    )
    stalled = _condition(dict(out.status or {}), "Stalled")
    assert stalled is not None
    assert stalled["status"] == "True"
    assert out.requeue_after is None


def test_an_unready_dependency_waits_with_fluxs_message_and_event(w: World) -> None:
    infra = kustomization(name="infra")
    infra["status"] = {}
    w.objects.put(infra)

    out = reconcile_kustomization(kustomization(dependsOn=[{"name": "infra"}]), w.deps)

    assert out.reason == "DependencyNotReady"
    assert out.message == "dependency 'flux-system/infra' is not ready"
    assert out.requeue_after == pytest.approx(30.0)
    assert w.events.recorded[-1]["message"] == (
        "Dependencies do not meet ready condition, retrying in 30s"
    )
    assert w.events.recorded[-1]["severity"] == "info"
    assert not w.engines.applied


def test_a_dependency_on_an_older_revision_of_the_same_source_is_not_up_to_date(
    w: World,
) -> None:
    w.objects.put(ready(kustomization(name="infra"), revision="main@sha1:" + "0" * 40))

    out = reconcile_kustomization(kustomization(dependsOn=[{"name": "infra"}]), w.deps)

    assert out.message == "dependency 'flux-system/infra' revision is not up to date"


def test_a_ready_dependency_in_another_namespace_lets_the_run_go_on(w: World) -> None:
    w.objects.put(ready(kustomization(name="infra", namespace="platform")))
    w.objects.put(git_repository(namespace="platform", url=URL))

    out = reconcile_kustomization(
        kustomization(dependsOn=[{"name": "infra", "namespace": "platform"}]), w.deps
    )

    assert out.ready


def test_a_missing_dependency_is_named(w: World) -> None:
    out = reconcile_kustomization(kustomization(dependsOn=[{"name": "ghost"}]), w.deps)

    assert out.message == "dependency 'flux-system/ghost' not found"


def test_a_dependency_cycle_is_stalled_and_named_instead_of_waiting(w: World) -> None:
    w.objects.put(kustomization(name="a", dependsOn=[{"name": "b"}]))
    w.objects.put(kustomization(name="b", dependsOn=[{"name": "c"}]))
    w.objects.put(kustomization(name="c", dependsOn=[{"name": "a"}]))

    out = reconcile_kustomization(kustomization(name="a", dependsOn=[{"name": "b"}]), w.deps)

    assert out.reason == "DependencyNotReady"
    assert out.message == (
        "dependency cycle: flux-system/a -> flux-system/b -> flux-system/c -> flux-system/a"
    )
    stalled = _condition(dict(out.status or {}), "Stalled")
    assert stalled is not None
    assert stalled["status"] == "True"
    assert _condition(dict(out.status or {}), "Reconciling") is None
    assert out.requeue_after is None


def test_a_self_dependency_is_a_cycle(w: World) -> None:
    obj = kustomization(name="a", dependsOn=[{"name": "a"}])
    w.objects.put(obj)

    out = reconcile_kustomization(obj, w.deps)

    assert out.message == "dependency cycle: flux-system/a -> flux-system/a"


def test_an_invalid_spec_is_stalled_naming_the_field(w: World) -> None:
    out = reconcile_kustomization(kustomization(interval="soon"), w.deps)

    assert out.reason == "ReconciliationFailed"
    assert out.message.startswith("Reconciliation failed terminally due to configuration error: ")
    assert "spec.interval" in out.message
    assert out.requeue_after is None


@pytest.mark.parametrize(("policy", "prune"), [("MirrorPrune", True), ("Orphan", False)])
def test_deletion_hands_the_inventory_and_policy_to_the_finalizer_then_drops_it(
    w: World, policy: str, prune: bool
) -> None:
    inventory = {"inventory": {"entries": [{"id": "apps_web_apps_Deployment", "v": "v1"}]}}
    obj = kustomization(status=inventory, prune=prune, deletionPolicy=policy, timeout="1m")
    obj["metadata"]["deletionTimestamp"] = "2026-01-02T03:04:05Z"

    out = reconcile_kustomization(obj, w.deps)

    assert out.finalizer is FinalizerChange.REMOVE
    assert w.engines.finalized == [
        ([InventoryEntry("apps_web_apps_Deployment", "v1")], policy, prune, False, 60.0)
    ]


def test_deletion_without_the_finalizer_writes_nothing(w: World) -> None:
    obj = kustomization(finalizer=False)
    obj["metadata"]["deletionTimestamp"] = "2026-01-02T03:04:05Z"

    out = reconcile_kustomization(obj, w.deps)

    assert out.status is None
    assert out.finalizer is None
    assert not w.engines.finalized


def test_a_failed_delete_keeps_the_finalizer_and_retries(w: World) -> None:
    w.engines.prune_error = "delete failed"
    obj = kustomization(
        status={"inventory": {"entries": [{"id": "apps_web_apps_Deployment", "v": "v1"}]}}
    )
    obj["metadata"]["deletionTimestamp"] = "2026-01-02T03:04:05Z"

    out = reconcile_kustomization(obj, w.deps)

    assert out.finalizer is None
    assert out.requeue_after == pytest.approx(600.0)


def test_jitter_spreads_the_interval_by_five_percent(w: World) -> None:
    w.clock.rand = 0.0
    low = reconcile_kustomization(kustomization(), w.deps)
    w.clock.rand = 0.999999

    high = reconcile_kustomization(kustomization(), w.deps)

    assert low.requeue_after == pytest.approx(570.0)
    assert high.requeue_after == pytest.approx(630.0, abs=0.01)


def test_a_retry_interval_is_used_after_a_failure(w: World) -> None:
    w.engines.apply_error = "boom"

    out = reconcile_kustomization(kustomization(retryInterval="2m"), w.deps)

    assert out.requeue_after == pytest.approx(120.0)


def test_progress_is_reported_with_fluxs_messages(tmp_path: Path, kustomize_bin: Path) -> None:
    seen: list[str] = []
    w = world(tmp_path, kustomize_bin)
    w.fetcher.trees[URL] = _tree(tmp_path / "repo")
    w.objects.put(git_repository(url=URL))
    deps = w.deps.__class__(
        **{
            **w.deps.__dict__,
            "progress": lambda _o, s: seen.append(
                next(c["message"] for c in s["conditions"] if c["type"] == "Reconciling")
            ),
        }
    )

    reconcile_kustomization(kustomization(), deps)

    assert seen == [
        f"Fetching manifests for revision {REVISION} with a timeout of 9m30s",
        f"Building manifests for revision {REVISION} with a timeout of 9m30s",
        f"Detecting drift for revision {REVISION} with a timeout of 9m30s",
    ]


def test_digest_is_required_to_be_sha256(w: World) -> None:
    w.objects.put(git_repository(url=URL, digest="md5:abc"))

    out = reconcile_kustomization(kustomization(), w.deps)

    assert out.reason == "ArtifactFailed"
    assert "no valid digest" in out.message
    assert DIGEST not in out.message


def test_an_oci_repository_source_records_its_origin_revision(w: World) -> None:
    oci = git_repository(name="oci", url=URL, revision="latest@sha256:" + "b" * 64)
    oci["kind"] = "OCIRepository"
    oci["status"]["artifact"]["metadata"] = {"org.opencontainers.image.revision": REVISION}
    w.objects.put(oci)

    out = reconcile_kustomization(
        kustomization(sourceRef={"kind": "OCIRepository", "name": "oci"}), w.deps
    )

    assert out.ready
    status = dict(out.status or {})
    assert status["lastAppliedRevision"] == "latest@sha256:" + "b" * 64
    assert status["lastAppliedOriginRevision"] == REVISION
    assert status["history"][0]["metadata"] == {
        "revision": "latest@sha256:" + "b" * 64,
        "originRevision": REVISION,
    }


def test_an_unsupported_source_kind_is_refused_by_name(w: World) -> None:
    out = reconcile_kustomization(kustomization(sourceRef={"kind": "Bucket", "name": "b"}), w.deps)

    assert out.reason == "ArtifactFailed"
    assert "Bucket/flux-system/b" in out.message
    assert out.requeue_after is None


def test_ready_expr_is_refused_naming_the_field(w: World) -> None:
    out = reconcile_kustomization(
        kustomization(dependsOn=[{"name": "infra", "readyExpr": "dep.status.ready"}]), w.deps
    )

    assert out.reason == "ReconciliationFailed"
    assert "spec.dependsOn[0].readyExpr" in out.message
    assert out.requeue_after is None


def test_newlines_are_dropped_from_substituted_values(w: World) -> None:
    w.objects.put(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "vars", "namespace": "flux-system"},
            "data": {"COLOUR": "gre\nen\n"},
        }
    )
    obj = kustomization(postBuild={"substituteFrom": [{"kind": "ConfigMap", "name": "vars"}]})

    assert reconcile_kustomization(obj, w.deps).ready

    assert w.engines.applied[0][0]["data"]["colour"] == "green"


@pytest.mark.parametrize(
    ("field", "value"),
    [("kubeConfig", {"secretRef": {"name": "remote"}}), ("decryption", {"provider": "sops"})],
)
def test_unsupported_fields_are_refused_rather_than_ignored(
    w: World, field: str, value: dict[str, Any]
) -> None:
    out = reconcile_kustomization(kustomization(**{field: value}), w.deps)

    assert out.reason == "ReconciliationFailed"
    assert f"field spec.{field}" in out.message
    assert not w.engines.applied


def test_an_invalid_health_check_expression_is_stalled(w: World) -> None:
    obj = kustomization(
        wait=True,
        healthCheckExprs=[
            {"apiVersion": "example.com/v1", "kind": "Thing", "current": "status.ready =="}
        ],
    )

    out = reconcile_kustomization(obj, w.deps)

    assert out.reason == "InvalidCELExpression"
    assert out.message.startswith("Reconciliation failed terminally due to configuration error: ")
    stalled = _condition(dict(out.status or {}), "Stalled")
    assert stalled is not None
    assert stalled["reason"] == "InvalidCELExpression"
    assert not w.engines.applied
