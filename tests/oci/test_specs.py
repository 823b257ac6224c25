"""Parsing OCIRepository objects and HelmRelease chartRefs: every mistake is named."""

from __future__ import annotations

from typing import Any

import pytest

from core.errors import InputError
from core.oci.reference import OCIReferenceError, check_digest, check_tag, parse_repository
from core.oci.source import OCIRepositorySpec
from core.units import HelmReleaseSpec, SourceRef, parse_unit

FILE = "clusters/prod/source.yaml"


def oci(**spec: Any) -> OCIRepositorySpec:
    return OCIRepositorySpec.parse(
        {
            "kind": "OCIRepository",
            "metadata": {"name": "app", "namespace": "apps"},
            "spec": {"url": "oci://ghcr.io/org/app", **spec},
        },
        file=FILE,
    )


def test_defaults_follow_source_controller() -> None:
    spec = oci()
    assert (spec.tag, spec.semver, spec.digest) == ("", "", "")
    assert spec.operation == "extract"
    assert spec.repository.base == "https://ghcr.io/v2/org/app"


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        ({"url": "https://ghcr.io/org/app"}, "spec.url", "scheme must be one of oci"),
        ({"url": "oci://ghcr.io/org/app:1.0"}, "spec.url", "must not contain a tag"),
        ({"url": "oci://ghcr.io/Org/App"}, "spec.url", "invalid repository name"),
        ({"url": "oci://user:pw@ghcr.io/org/app"}, "spec.url", "credentials"),
        ({"layerSelector": {"operation": "move"}}, "spec.layerSelector.operation", "extract or"),
        ({"ref": {"semver": ">>1"}}, "spec.ref.semver", "improper constraint"),
        ({"secretRef": {"name": "creds"}}, "spec.secretRef", "credentials are not read"),
        ({"provider": "aws"}, "spec.provider", "aws credentials are not used"),
        ({"verify": {"provider": "cosign"}}, "spec.verify", "not supported"),
        ({"ignore": ["*.md"]}, "spec.ignore", "must be a string"),
        ({"insecure": "yes"}, "spec.insecure", "must be a boolean"),
    ],
)
def test_mistakes_name_file_object_and_field(
    spec: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(InputError) as caught:
        oci(**spec)
    text = str(caught.value)
    assert f"file {FILE}" in text
    assert "object OCIRepository/apps/app" in text
    assert f"field {field}" in text
    assert message in text


def test_loopback_and_insecure_registries_speak_http() -> None:
    assert parse_repository("oci://127.0.0.1:5000/a").plain_http
    assert parse_repository("oci://localhost:5000/a").plain_http
    assert parse_repository("oci://registry.lan/a", insecure=True).plain_http
    assert not parse_repository("oci://registry.lan/a").plain_http


@pytest.mark.parametrize("tag", ["", "-x", "a" * 129, "a/b", "1.0+meta"])
def test_bad_tags_are_refused(tag: str) -> None:
    with pytest.raises(OCIReferenceError):
        check_tag(tag)


@pytest.mark.parametrize("digest", ["sha256:abc", "sha512:" + "0" * 128, "sha256:" + "G" * 64])
def test_only_sha256_digests_are_accepted(digest: str) -> None:
    with pytest.raises(OCIReferenceError):
        check_digest(digest)


def release(spec: dict[str, Any]) -> HelmReleaseSpec:
    parsed = parse_unit(
        {
            "apiVersion": "helm.toolkit.fluxcd.io/v2",
            "kind": "HelmRelease",
            "metadata": {"name": "web", "namespace": "apps"},
            "spec": spec,
        },
        file=FILE,
    )
    assert isinstance(parsed, HelmReleaseSpec)
    return parsed


def test_chart_ref_defaults_to_the_release_namespace() -> None:
    spec = release({"chartRef": {"kind": "OCIRepository", "name": "podinfo"}})
    assert spec.chart_ref == SourceRef("OCIRepository", "apps", "podinfo")
    assert spec.source == spec.chart_ref
    other = release({"chartRef": {"kind": "HelmChart", "name": "c", "namespace": "flux-system"}})
    assert other.chart_ref == SourceRef("HelmChart", "flux-system", "c")


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        ({"chartRef": {"kind": "GitRepository", "name": "x"}}, "spec.chartRef.kind", "must be"),
        ({"chartRef": {"name": "x"}}, "spec.chartRef.kind", "is required"),
        ({"chartRef": {"kind": "HelmChart"}}, "spec.chartRef.name", "is required"),
        (
            {
                "chartRef": {"kind": "HelmChart", "name": "x"},
                "chart": {"spec": {"chart": "x", "sourceRef": {"name": "r"}}},
            },
            "spec.chartRef",
            "cannot be set together with spec.chart",
        ),
    ],
)
def test_chart_ref_mistakes_are_named(spec: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(InputError) as caught:
        release(spec)
    assert f"field {field}" in str(caught.value)
    assert message in str(caught.value)
