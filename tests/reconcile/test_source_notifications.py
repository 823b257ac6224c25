"""A GitRepository's events reach the notifier in the real controller process.

An Alert on GitRepository event sources, with a generic Provider whose receiver is a real HTTP
server on loopback (`--notification-allow-loopback`), gets source-controller's `NewArtifact`
event when the controller stores the repository's first artifact, as notification-controller
gets it from source-controller.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.kube import apply, eventually
from tests.fixtures.gitserver import commit, git
from tests.notification.objects import alert_obj, install_notification_crds, provider_obj
from tests.notification.receivers import receiver
from tests.reconcile.conftest import Flux
from tests.reconcile.controller import start_controller

pytestmark = pytest.mark.cluster


def test_a_new_artifact_event_is_sent_to_an_alerts_provider(
    flux: Flux,
    dynamic_client: Any,
    kustomize_bin: Path,
    admin_kubeconfig: Path,
    tmp_path: Path,
) -> None:
    install_notification_crds(dynamic_client)
    with receiver() as hook:
        provider = provider_obj("hook", {"type": "generic", "address": hook.url}, flux.namespace)
        del provider["metadata"]["uid"]
        apply(dynamic_client, provider)
        alert = alert_obj(
            "sources",
            {
                "providerRef": {"name": "hook"},
                "eventSeverity": "info",
                "eventSources": [{"kind": "GitRepository", "name": "*"}],
            },
            flux.namespace,
        )
        apply(dynamic_client, alert)
        commit(flux.work, {"README.md": b"hello\n"}, "first commit")
        git("push", "--quiet", flux.repo.push_url, "HEAD:main", cwd=flux.work)

        process = start_controller(
            admin_kubeconfig,
            flux.namespace,
            kustomize_bin,
            tmp_path / "controller",
            "--notification-allow-loopback",
        )
        try:
            eventually(lambda: hook.received, "a notification for the GitRepository", timeout=300)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(120)

    sent = json.loads(hook.received[0].body)
    assert sent["involvedObject"]["kind"] == "GitRepository"
    assert sent["involvedObject"]["name"] == "flux-system"
    assert sent["reason"] == "NewArtifact"
    assert sent["message"] == "stored artifact for commit 'first commit'"
    assert sent["reportingController"] == "source-controller"
