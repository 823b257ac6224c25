"""The pure parts of the flux verbs: kstatus, table rows, revision shortening, timeouts."""

from __future__ import annotations

from typing import Any

import pytest

from cli.flux import VerbFailed, Waiter, kstatus, reconcile, summarise, table
from cli.main import main
from core.cluster.fluxobjects import GIT_REPOSITORY, KUSTOMIZATION, FluxKind


def _obj(generation: int = 1, observed: int | None = 1, **conditions: str) -> dict[str, Any]:
    status: dict[str, Any] = {
        "conditions": [
            {"type": t, "status": s, "message": t.lower()} for t, s in conditions.items()
        ]
    }
    if observed is not None:
        status["observedGeneration"] = observed
    return {"metadata": {"name": "apps", "generation": generation}, "spec": {}, "status": status}


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (_obj(Ready="True"), "Current"),
        (_obj(Ready="False"), "Current"),
        (_obj(generation=2, observed=1, Ready="True"), "InProgress"),
        (_obj(Ready="False", Reconciling="True"), "InProgress"),
        (_obj(Ready="False", Stalled="True"), "Failed"),
        (_obj(observed=None), "Current"),
    ],
)
def test_kstatus_follows_the_condition_rules(obj: dict[str, Any], expected: str) -> None:
    assert kstatus(obj) == expected


def test_source_rows_show_the_artifact_revision_and_keep_non_hex_revisions_whole() -> None:
    obj = _obj(Ready="True")
    obj["status"]["artifact"] = {"revision": "v1.2.3@sha256:" + "ab" * 32}
    assert summarise(obj, GIT_REPOSITORY)[1] == "v1.2.3@sha256:abababab"
    obj["status"]["lastAppliedRevision"] = "main@sha1:not-hex-at-all"
    assert summarise(obj, KUSTOMIZATION)[1] == "main@sha1:not-hex-at-all"


def test_table_pads_columns() -> None:
    assert table(["A", "BB"], [["long", "x"]]).splitlines() == ["A   \tBB", "long\tx"]


class _Stalled:
    def __init__(self) -> None:
        self.calls = 0

    def get(self, kind: FluxKind, namespace: str, name: str) -> dict[str, Any]:
        self.calls += 1
        obj = _obj(Ready="False", Stalled="True")
        obj["status"]["lastHandledReconcileAt"] = "later" if self.calls > 1 else None
        return obj

    def list(self, kind: FluxKind, namespace: str | None, label_selector: str = "") -> list[Any]:
        return []

    def merge_patch(self, kind: FluxKind, namespace: str, name: str, patch: Any) -> dict[str, Any]:
        return {}


def test_a_stalled_object_fails_at_once_instead_of_polling_to_the_timeout() -> None:
    slept: list[float] = []
    waiter = Waiter(timeout=300, sleep=slept.append, clock=lambda: 0.0)
    with pytest.raises(VerbFailed, match="Kustomization reconciliation failed: ready"):
        reconcile(_Stalled(), KUSTOMIZATION, "ns", "apps", waiter, out=None)
    assert slept == []


def test_a_bad_timeout_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["reconcile", "ks", "apps", "--timeout", "soon"])
    assert exit_info.value.code == 2
    assert "not a duration: 'soon'" in capsys.readouterr().err
