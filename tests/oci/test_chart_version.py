"""helm-controller's chart version tracking for a chartRef to an OCIRepository."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import RenderError
from core.oci.source import Artifact
from core.render.ocisource import prepare_chart
from tests.fixtures.registry import tarball

DIGEST = "sha256:0123456789abcdef" + "0" * 48
CHART_YAML = "apiVersion: v2\nname: webapp\nversion: 1.2.0\nappVersion: 1.0\n"


def _artifact(tmp_path: Path, revision: str, chart_yaml: str = CHART_YAML) -> Artifact:
    package = tmp_path / "chart.tgz"
    package.write_bytes(tarball({"webapp/Chart.yaml": chart_yaml, "webapp/values.yaml": "{}\n"}))
    return Artifact(revision, package, {})


def test_the_digest_becomes_build_metadata(tmp_path: Path) -> None:
    chart = prepare_chart(_artifact(tmp_path, f"1.2.0@{DIGEST}"), tmp_path, track_digest=True)
    assert chart.name == "webapp"
    text = (chart / "Chart.yaml").read_text()
    assert "version: 1.2.0+0123456789ab\n" in text
    # Nothing else is rewritten: appVersion stays as written.
    assert "appVersion: 1.0\n" in text


def test_a_digest_revision_and_a_plus_tag(tmp_path: Path) -> None:
    chart = prepare_chart(_artifact(tmp_path, DIGEST), tmp_path, track_digest=True)
    assert "version: 1.2.0+0123456789ab" in (chart / "Chart.yaml").read_text()
    built = tmp_path / "b"
    built.mkdir()
    plus = _artifact(built, f"1.2.0_build.1@{DIGEST}", CHART_YAML.replace("1.2.0", "1.2.0+build.1"))
    chart = prepare_chart(plus, built, track_digest=True)
    assert "version: 1.2.0+0123456789ab" in (chart / "Chart.yaml").read_text()


@pytest.mark.parametrize(
    ("tag", "message"),
    [
        ("latest", "failed parsing artifact revision latest"),
        ("1.2.1", "artifact revision 1.2.1 does not match chart version 1.2.0"),
    ],
)
def test_a_tag_must_be_the_chart_version(tmp_path: Path, tag: str, message: str) -> None:
    with pytest.raises(RenderError, match=message):
        prepare_chart(_artifact(tmp_path, f"{tag}@{DIGEST}"), tmp_path, track_digest=True)


def test_without_tracking_the_chart_is_untouched(tmp_path: Path) -> None:
    chart = prepare_chart(_artifact(tmp_path, f"latest@{DIGEST}"), tmp_path, track_digest=False)
    assert (chart / "Chart.yaml").read_text() == CHART_YAML


def test_an_artifact_must_hold_one_chart(tmp_path: Path) -> None:
    package = tmp_path / "two.tgz"
    package.write_bytes(tarball({"a/Chart.yaml": CHART_YAML, "b/Chart.yaml": CHART_YAML}))
    with pytest.raises(RenderError, match="exactly one Helm chart"):
        prepare_chart(Artifact(DIGEST, package, {}), tmp_path, track_digest=True)
