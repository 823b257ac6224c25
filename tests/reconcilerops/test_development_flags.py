"""The controller's notification and prediction flags.

`--notification-allow-loopback` (off by default) widens only the loopback rule of the notification
delivery policy. Predicted vs applied is on by default, from the artifacts the controller keeps;
`--predict=false` turns it off, `--predict-cluster` adds the entry point previewed whole for units
that need other units' objects, and `--predict-repository` (development) predicts from a local
clone instead. The demo's end-to-end test (`tests/demo`) shows them working in a running
controller.
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import pytest

from cli.reconcile import _predict_repository, add_controller_arguments
from core.errors import TidegateError
from reconciler.notification.assembly import DEFAULT_POLICY
from reconciler.notification.predictor import ArtifactPredictor, RepositoryPredictor
from reconciler.runtime import Settings
from reconciler.wiring import notification_policy, predictor


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_controller_arguments(parser)
    return parser.parse_args(list(argv))


def test_loopback_is_off_and_prediction_on_by_default(tmp_path: Path) -> None:
    args = _parse()
    assert args.notification_allow_loopback is False
    assert args.predict is True
    assert args.predict_repository is None
    assert args.predict_cluster == ""
    settings = Settings(kustomize=Path("kustomize"))
    assert notification_policy(settings) == DEFAULT_POLICY
    assert notification_policy(settings).allow_loopback is False
    assert isinstance(predictor(settings, tmp_path), ArtifactPredictor)


def test_predict_false_turns_prediction_off(tmp_path: Path) -> None:
    assert _parse("--predict=false").predict is False
    assert _parse("--predict").predict is True
    settings = Settings(kustomize=Path("kustomize"), predict=False)
    assert predictor(settings, tmp_path) is None


def test_allow_loopback_widens_only_loopback() -> None:
    assert _parse("--notification-allow-loopback").notification_allow_loopback is True
    assert _parse("--notification-allow-loopback=false").notification_allow_loopback is False
    policy = notification_policy(
        Settings(kustomize=Path("kustomize"), notification_allow_loopback=True)
    )
    assert policy.allow_loopback is True
    assert policy.allow_private is False
    assert policy.allowed_hosts == DEFAULT_POLICY.allowed_hosts


def test_a_predict_repository_wires_the_repository_predictor(tmp_path: Path) -> None:
    repo = tmp_path / "fleet"
    subprocess.run(["git", "init", "--quiet", str(repo)], check=True)
    args = _parse("--predict-repository", str(repo), "--predict-cluster", "clusters/demo")
    assert _predict_repository(args) == repo
    settings = Settings(
        kustomize=Path("kustomize"),
        helm=Path("helm"),
        predict_repository=repo,
        predict_cluster="clusters/demo",
    )
    assert isinstance(predictor(settings, tmp_path), RepositoryPredictor)


def test_a_predict_repository_needs_a_cluster_and_a_git_repository(tmp_path: Path) -> None:
    with pytest.raises(TidegateError, match="--predict-repository needs --predict-cluster"):
        _predict_repository(_parse("--predict-repository", str(tmp_path)))
    with pytest.raises(TidegateError, match="is not a git repository"):
        _predict_repository(
            _parse("--predict-repository", str(tmp_path), "--predict-cluster", "clusters/a")
        )


def test_a_predict_cluster_alone_predicts_from_the_kept_artifacts(tmp_path: Path) -> None:
    args = _parse("--predict-cluster", "clusters/demo")
    assert _predict_repository(args) is None
    settings = Settings(
        kustomize=Path("kustomize"), helm=Path("helm"), predict_cluster="clusters/demo"
    )
    assert isinstance(predictor(settings, tmp_path), ArtifactPredictor)
