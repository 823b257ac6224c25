"""Sample previews for the report tests, planned from hand-built renders.

`sample_preview` exercises every action in one cluster; `secret_preview` plants canary Secret
values through `core.secrets.Masker` (updated, deleted, created, and as tokens inside a failed
unit's error and a cluster error) so tests can prove no output carries them.
"""

from __future__ import annotations

from typing import Any

from core.changes import Preview
from core.plan import plan as planning
from core.secrets import Masker
from tests.plan.builders import (
    CLUSTER,
    cluster,
    configmap,
    deployment,
    flux_object,
    ks,
    ks_ref,
    manifest,
)

__all__ = ["APPS", "CANARIES", "WEB", "sample_preview", "secret_preview"]

APPS = ks_ref("apps")
WEB = ks_ref("web")
CANARIES = ("canary-before-3e8d1a", "canary-after-77b0c4", "canary-gone-0f9e2b", "canary-new-a1")


def sample_preview() -> Preview:
    """One cluster with an update (plus chart-label noise), a create, a delete and a move."""
    base = cluster(
        ks("flux-system", flux_object(APPS), flux_object(WEB)),
        ks("apps", deployment(replicas=1), configmap("gone"), deployment("mover")),
        ks("web", configmap("page")),
    )
    head = cluster(
        ks("flux-system", flux_object(APPS), flux_object(WEB)),
        ks("apps", deployment(replicas=2, labels={"helm.sh/chart": "api-2"}), configmap("new")),
        ks("web", configmap("page"), deployment("mover")),
    )
    return planning.plan_preview("a" * 40, "b" * 40, {CLUSTER: base}, {CLUSTER: head})


def secret_preview() -> Preview:
    """A preview whose Secrets carry canary values, masked as a renderer would mask them."""
    masker = Masker()

    def secret(name: str, **values: str) -> dict[str, Any]:
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": "web"},
            "stringData": values,
        }
        return masker.mask_object(body)

    token = masker.token(CANARIES[0].encode())
    base = cluster(
        ks("apps", manifest(secret("db", password=CANARIES[0]))),
        ks("old", manifest(secret("gone", key=CANARIES[2]))),
        ks("web", configmap("x")),
    )
    head = cluster(
        ks("apps", manifest(secret("db", password=CANARIES[1]))),
        ks("old", manifest(secret("new", key=CANARIES[3]))),
        ks("web", error=f"render failed near value {token}"),
        errors=(f"decryption of {token} failed",),
    )
    return planning.plan_preview("a", "b", {CLUSTER: base}, {CLUSTER: head})
