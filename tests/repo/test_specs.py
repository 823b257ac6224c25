"""Flux spec fields read the way the controllers read them: paths and CRD policies."""

from __future__ import annotations

from typing import Any

import pytest

from core.errors import InputError
from core.units import HelmReleaseSpec, parse_unit, source_path


@pytest.mark.parametrize(
    ("path", "joined"),
    [
        ("/apps/prod", "apps/prod"),
        ("./apps/prod/", "apps/prod"),
        ("apps/prod", "apps/prod"),
        ("", ""),
        ("./", ""),
        ("/", ""),
        ("../../apps", "apps"),
        ("apps/../../../etc", "etc"),
    ],
)
def test_paths_join_the_source_root_like_securejoin(path: str, joined: str) -> None:
    assert source_path(path) == joined


def _release(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "helm.toolkit.fluxcd.io/v2",
        "kind": "HelmRelease",
        "metadata": {"name": "podinfo", "namespace": "apps"},
        "spec": {
            "chart": {"spec": {"chart": "podinfo", "sourceRef": {"kind": "HelmRepository"}}},
            **spec,
        },
    }


def test_crd_policies_default_to_create_as_helm_controller_code_does() -> None:
    release = _release()
    release["spec"]["chart"]["spec"]["sourceRef"]["name"] = "podinfo"
    spec = parse_unit(release)
    assert isinstance(spec, HelmReleaseSpec)
    assert (spec.install_crds, spec.upgrade_crds) == ("Create", "Create")
    release["spec"]["upgrade"] = {"crds": "CreateReplace"}
    release["spec"]["install"] = {"crds": "Skip"}
    spec = parse_unit(release)
    assert isinstance(spec, HelmReleaseSpec)
    assert (spec.install_crds, spec.upgrade_crds) == ("Skip", "CreateReplace")


def test_an_invalid_crd_policy_names_the_file_object_and_field() -> None:
    release = _release(upgrade={"crds": "Replace"})
    release["spec"]["chart"]["spec"]["sourceRef"]["name"] = "podinfo"
    with pytest.raises(InputError) as caught:
        parse_unit(release, file="apps/podinfo.yaml")
    message = str(caught.value)
    assert "file apps/podinfo.yaml" in message
    assert "object HelmRelease/apps/podinfo" in message
    assert "field spec.upgrade.crds" in message
