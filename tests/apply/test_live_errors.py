"""How the live adapter turns apiserver refusals into typed errors that name the object."""

from __future__ import annotations

import json
from typing import Any

import pytest

from core.cluster import live
from core.cluster.port import (
    ClusterError,
    Conflict,
    Forbidden,
    ImmutableField,
    Invalid,
    NotFound,
)


def _refusal(
    code: int, reason: str, message: str, causes: list[dict[str, Any]]
) -> tuple[int, str, bytes]:
    """An apiserver refusal as the adapter receives it: status, reason phrase, Status body."""
    status = {"kind": "Status", "reason": reason, "message": message, "details": {"causes": causes}}
    return code, "HTTP reason", json.dumps(status).encode()


def _cause(field: str, message: str) -> dict[str, str]:
    return {"reason": "FieldValueInvalid", "field": field, "message": message}


@pytest.mark.parametrize(
    ("code", "reason", "expected"),
    [
        (404, "NotFound", NotFound),
        (403, "Forbidden", Forbidden),
        (409, "Conflict", Conflict),
        (400, "BadRequest", Invalid),
        (500, "InternalError", ClusterError),
    ],
)
def test_status_codes_map_to_typed_errors(code: int, reason: str, expected: type) -> None:
    error = live._translate("ConfigMap/ns/x", *_refusal(code, reason, "refused", []))

    assert type(error) is expected
    assert str(error) == "ConfigMap/ns/x: refused"
    assert error.detail == "refused"
    assert error.reason == reason
    assert error.status == code


def test_an_immutable_field_is_told_apart_from_any_other_invalid_value() -> None:
    immutable = _cause("spec.template", "Invalid value: ...: field is immutable")
    other = _cause("spec.replicas", "Invalid value: -1: must be greater than or equal to 0")

    only = live._translate("Job/ns/j", *_refusal(422, "Invalid", "Job is invalid", [immutable]))
    mixed = live._translate(
        "Job/ns/j", *_refusal(422, "Invalid", "Job is invalid", [immutable, other])
    )

    assert isinstance(only, ImmutableField)
    assert only.fields == ("spec.template",)
    assert type(mixed) is Invalid
    assert mixed.fields == ("spec.template", "spec.replicas")


def test_a_body_that_is_not_a_status_still_names_the_object() -> None:
    error = live._translate("Service/ns/web", 502, "Bad Gateway", b"<html>proxy</html>")

    assert str(error) == "Service/ns/web: Bad Gateway"
    assert "html" not in str(error)


def test_names_of_objects_and_service_account_users_are_flux_shaped() -> None:
    assert live.object_name("Deployment", "apps", "web") == "Deployment/apps/web"
    assert live.object_name("Namespace", "", "apps") == "Namespace/apps"
    assert live.service_account_user("apps", "deployer") == "system:serviceaccount:apps:deployer"
