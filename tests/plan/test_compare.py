"""Comparing two renders of one object.

Aspects covered:
- unchanged and noise-only objects are not changed, but noise counts are kept;
- updates: unified diff headers naming the object, changed lines, field paths (nested, list
  positions, keys with dots);
- created and deleted objects: all-plus and all-minus diffs, no field paths;
- multi-line strings diff line by line;
- masking: changed Secret values show `*** (before)` / `*** (after)`, equal ones `***`, added
  keys `***`; neither the cleartext canary nor any token appears in any output; SOPS Secrets are
  compared by key set; the last-applied annotation never leaks;
- errors raised while formatting a Secret name the object and carry no value or token;
- `scrub` removes tokens from free text and leaves other text alone.
"""

from __future__ import annotations

import pytest

from core.model import Manifest
from core.plan import compare as comparing
from core.secrets import MASK, MASK_AFTER, MASK_BEFORE, Masker, is_token
from tests.plan.builders import configmap, deployment, manifest, secret

CANARY_OLD = "canary-old-7f3a9c"
CANARY_NEW = "canary-new-1b2d4e"
CANARY_SAME = "canary-same-55aa00"


def _assert_nothing_secret(*texts: str) -> None:
    for text in texts:
        for canary in (CANARY_OLD, CANARY_NEW, CANARY_SAME):
            assert canary not in text
        assert not any(is_token(word.strip("'\"")) for word in text.split())
        assert "tidegate:masked" not in text


def test_identical_objects_are_unchanged() -> None:
    result = comparing.compare(deployment(), deployment())

    assert result == comparing.Comparison(changed=False)


def test_noise_only_differences_are_not_a_change_but_are_counted() -> None:
    before = deployment(labels={"helm.sh/chart": "api-1.0.0"})
    after = deployment(labels={"helm.sh/chart": "api-1.1.0"}, status={"replicas": 1})

    result = comparing.compare(before, after)

    assert not result.changed
    assert result.diff == ""
    assert result.suppressed == {"helm-chart-labels": 2, "server-fields": 2}


def test_update_shows_a_unified_diff_naming_the_object() -> None:
    result = comparing.compare(deployment(replicas=1), deployment(replicas=3))

    lines = result.diff.splitlines()
    assert result.changed
    assert lines[:2] == ["--- before/Deployment/web/api", "+++ after/Deployment/web/api"]
    assert "-  replicas: 1" in lines
    assert "+  replicas: 3" in lines
    assert result.fields == ("spec.replicas",)


def test_update_reports_nested_list_paths() -> None:
    result = comparing.compare(deployment(image="api:1"), deployment(image="api:2", replicas=2))

    assert result.fields == ("spec.replicas", "spec.template.spec.containers[0].image")


def test_update_diff_excludes_noise_but_counts_it() -> None:
    before = deployment(template_annotations={"checksum/config": "1"})
    after = deployment(template_annotations={"checksum/config": "2"}, replicas=2)

    result = comparing.compare(before, after)

    assert "checksum" not in result.diff
    assert result.suppressed == {"checksum-annotations": 2}


def _container_spec(*containers: dict[str, object], **extra: object) -> Manifest:
    body = deployment().body
    spec = body["spec"]["template"]["spec"]
    spec["containers"] = list(containers)
    spec.update(extra)
    return manifest(body)


API = {"name": "api", "image": "api:1"}


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        pytest.param(
            _container_spec(API),
            _container_spec(API, {"name": "proxy", "image": "envoy:1"}),
            ("spec.template.spec.containers[1]",),
            id="list-item-added",
        ),
        pytest.param(
            _container_spec({**API, "env": [{"name": "A", "value": "1"}]}),
            _container_spec({**API, "env": [{"name": "A", "value": "2"}]}),
            ("spec.template.spec.containers[0].env[0].value",),
            id="nested-list-value",
        ),
        pytest.param(
            _container_spec(API, hostNetwork=True),
            _container_spec(API),
            ("spec.template.spec.hostNetwork",),
            id="key-removed",
        ),
        pytest.param(
            _container_spec(API, dnsConfig="none"),
            _container_spec(API, dnsConfig={"options": []}),
            ("spec.template.spec.dnsConfig",),
            id="type-changed",
        ),
    ],
)
def test_field_paths_of_structural_changes(
    before: Manifest, after: Manifest, expected: tuple[str, ...]
) -> None:
    assert comparing.compare(before, after).fields == expected


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        pytest.param(("spec", "replicas"), "spec.replicas", id="plain"),
        pytest.param(("spec", "containers", 0, "image"), "spec.containers[0].image", id="list"),
        pytest.param(("data", "tls.crt"), 'data["tls.crt"]', id="dotted-key"),
        pytest.param(
            ("metadata", "labels", "app.kubernetes.io/name"),
            'metadata.labels["app.kubernetes.io/name"]',
            id="label-key",
        ),
        pytest.param((), "", id="root"),
    ],
)
def test_field_path_format(parts: tuple[str | int, ...], expected: str) -> None:
    assert comparing.field_path(parts) == expected


def test_created_object_is_an_all_plus_diff_without_fields() -> None:
    result = comparing.compare(None, configmap("settings", data={"mode": "fast"}))

    body = result.diff.splitlines()[3:]
    assert result.changed
    assert result.fields == ()
    assert body
    assert all(line.startswith("+") for line in body)
    assert "+  mode: fast" in body


def test_deleted_object_is_an_all_minus_diff() -> None:
    result = comparing.compare(configmap("settings"), None)

    body = result.diff.splitlines()[3:]
    assert body
    assert all(line.startswith("-") for line in body)
    assert result.diff.startswith("--- before/ConfigMap/web/settings\n")


def test_compare_needs_a_side() -> None:
    with pytest.raises(ValueError, match="at least one side"):
        comparing.compare(None, None)


def test_multi_line_values_diff_line_by_line() -> None:
    before = configmap("conf", data={"app.ini": "a = 1\nb = 2\nc = 3\n"})
    after = configmap("conf", data={"app.ini": "a = 1\nb = 20\nc = 3\n"})

    result = comparing.compare(before, after)

    assert "-    b = 2" in result.diff.splitlines()
    assert "+    b = 20" in result.diff.splitlines()
    assert result.fields == ('data["app.ini"]',)


def test_changed_secret_value_shows_before_and_after_markers_only() -> None:
    masker = Masker()
    before = secret(masker, "db", {"password": CANARY_OLD, "user": CANARY_SAME})
    after = secret(masker, "db", {"password": CANARY_NEW, "user": CANARY_SAME})

    result = comparing.compare(before, after)

    lines = result.diff.splitlines()
    assert f"-  password: '{MASK_BEFORE}'" in lines
    assert f"+  password: '{MASK_AFTER}'" in lines
    assert result.fields == ("data.password",)
    _assert_nothing_secret(result.diff, *result.fields)


def test_equal_secret_values_show_a_plain_mask_in_context() -> None:
    masker = Masker()
    before = secret(masker, "db", {"password": CANARY_SAME, "a": CANARY_OLD})
    after = secret(masker, "db", {"password": CANARY_SAME, "a": CANARY_NEW})

    result = comparing.compare(before, after)

    assert f"   password: '{MASK}'" in result.diff.splitlines()
    _assert_nothing_secret(result.diff)


def test_added_secret_key_shows_a_plain_mask() -> None:
    masker = Masker()
    before = secret(masker, "db", {"user": CANARY_SAME})
    after = secret(masker, "db", {"user": CANARY_SAME, "token": CANARY_NEW})

    result = comparing.compare(before, after)

    assert f"+  token: '{MASK}'" in result.diff.splitlines()
    assert result.fields == ("data.token",)
    _assert_nothing_secret(result.diff)


def test_created_secret_shows_only_masks() -> None:
    result = comparing.compare(None, secret(Masker(), "db", {"password": CANARY_NEW}))

    assert f"+  password: '{MASK}'" in result.diff.splitlines()
    _assert_nothing_secret(result.diff)


def test_sops_secrets_compare_by_key_set() -> None:
    masker = Masker()
    before = secret(masker, "db", {"password": "ENC[AES256_GCM,data:aaa]"}, sops={"mac": "1"})
    same_keys = secret(masker, "db", {"password": "ENC[AES256_GCM,data:bbb]"}, sops={"mac": "2"})
    more_keys = secret(
        masker, "db", {"password": "ENC[AES256_GCM,data:ccc]", "extra": "ENC[x]"}, sops={"mac": "3"}
    )

    unchanged = comparing.compare(before, same_keys)
    changed = comparing.compare(before, more_keys)

    assert not unchanged.changed
    assert unchanged.suppressed == {"sops-metadata": 2}
    assert changed.fields == ("data.extra",)
    assert "ENC[" not in changed.diff
    assert "mac" not in changed.diff


def test_last_applied_annotation_never_leaks() -> None:
    masker = Masker()
    annotation = "kubectl.kubernetes.io/last-applied-configuration"
    body_old = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": "web", "annotations": {annotation: CANARY_OLD}},
        "stringData": {"password": CANARY_SAME},
    }
    body_new = {
        **body_old,
        "metadata": {**body_old["metadata"], "annotations": {annotation: CANARY_NEW}},
    }

    result = comparing.compare(
        manifest(masker.mask_object(body_old)), manifest(masker.mask_object(body_new))
    )

    assert result.changed
    _assert_nothing_secret(result.diff, *result.fields)


def test_formatting_errors_name_the_object_but_carry_no_value() -> None:
    masker = Masker()
    body = masker.mask_object(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "db", "namespace": "web", "annotations": {"odd": object()}},
            "stringData": {"password": CANARY_NEW},
        }
    )

    with pytest.raises(ValueError, match="cannot be shown as YAML") as caught:
        comparing.compare(None, manifest(body))

    assert "Secret/web/db" in str(caught.value)
    _assert_nothing_secret(str(caught.value), repr(caught.value))


def test_scrub_replaces_tokens_in_free_text() -> None:
    token = Masker().token(b"hunter2")

    text = comparing.scrub(f"bad value {token}, also key:{token} and '{token}'")

    assert token not in text
    assert text == "bad value ***, also key:*** and '***'"


def test_scrub_leaves_ordinary_text_alone() -> None:
    text = "Deployment/web/api: spec.replicas must be an integer (got 'x')"

    assert comparing.scrub(text) == text
