"""The event's JSON is Go's json.Marshal output, and metadata is cleaned as Flux cleans it."""

from __future__ import annotations

from reconciler.notification.event import Event, ObjectReference, clean_metadata
from tests.notification.objects import ks_event


def test_json_is_byte_identical_to_go_marshal() -> None:
    event = Event(
        involved_object=ObjectReference(
            kind="Kustomization",
            name="apps",
            namespace="flux-system",
            api_version="kustomize.toolkit.fluxcd.io/v1",
        ),
        severity="error",
        timestamp="2026-11-30T09:00:00Z",
        message="apply failed: a < b && c > d ü",
        reason="ReconciliationFailed",
        reporting_controller="kustomize-controller",
        metadata={"z": "1", "revision": "main@sha1:ab"},
    )
    # What Go's encoding/json writes for the same eventv1.Event: struct field order, empty
    # fields omitted, map keys sorted, HTML characters escaped, UTF-8 kept.
    assert (
        event.to_json()
        == (
            '{"involvedObject":{"kind":"Kustomization","namespace":"flux-system","name":"apps",'
            '"apiVersion":"kustomize.toolkit.fluxcd.io/v1"},"severity":"error",'
            '"timestamp":"2026-11-30T09:00:00Z",'
            '"message":"apply failed: a \\u003c b \\u0026\\u0026 c \\u003e d ü",'
            '"reason":"ReconciliationFailed","metadata":{"revision":"main@sha1:ab","z":"1"},'
            '"reportingController":"kustomize-controller"}'
        ).encode()
    )


def test_empty_metadata_and_instance_are_omitted() -> None:
    wire = ks_event(metadata={}).to_wire()
    assert "metadata" not in wire
    assert "reportingInstance" not in wire


def test_metadata_keeps_only_the_involved_groups_keys_without_prefix() -> None:
    event = ks_event(
        metadata={
            "kustomize.toolkit.fluxcd.io/revision": "main@sha1:ab",
            "kustomize.toolkit.fluxcd.io/commit_status": "update",
            "kustomize.toolkit.fluxcd.io/checksum": "x",
            "kustomize.toolkit.fluxcd.io/digest": "sha256:y",
            "source.toolkit.fluxcd.io/revision": "other",
        }
    )
    assert dict(clean_metadata(event).metadata) == {
        "revision": "main@sha1:ab",
        "commit_status": "update",
    }
