"""The benchmark fleet grows by clusters without moving what a change touches.

`bench.fleet` generates the synthetic fleet the preview benchmarks run on; `--clusters N` adds
edge sites so the cost of a one-file preview can be recorded against the fleet's size. These tests
generate a four-cluster fleet with the pinned helm and real git, and check that the three named
clusters are byte for byte the three-cluster fleet's (the tree ids below are that fleet's), that
the added site is complete, and that each change touches the same files as before.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from bench import fleet as fleetgen

# Tree ids of the default three-cluster fleet at its base commit (seed 20240611).
_THREE_CLUSTER_TREES = {
    "clusters/staging": "70bd0afb65c167a439328295233eb611e00de9cf",
    "clusters/production": "39fc813cfc765e8c9b0b397eb8591cd9a4769ab7",
    "clusters/edge": "5bac81d1e4999344ab660cb33b401ad84c7fc704",
    "apps/staging": "080ea6631ad2cb9c6a8fb4109a9c9fb1170f7104",
    "apps/production": "b60373905dd5f592fd10e141d7387bf802ec5d45",
    "apps/edge": "42b66eab097e15bd8c5979012d148ddae25bc064",
    "infrastructure/edge": "c2e45110f37652ef0b5fc23e75b86b6a926353b5",
    "apps/base": "313141d11e0635b9abda3a682fdb0830f3961459",
    "components": "e89f7ace9fee91112a484b156d7e1da6790074b0",
}
_THREE_CLUSTER_OBJECTS = 5121


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


@pytest.fixture(scope="module")
def four(tmp_path_factory: pytest.TempPathFactory) -> fleetgen.Fleet:
    return fleetgen.generate(tmp_path_factory.mktemp("fleet") / "out", clusters=4)


def test_the_named_clusters_stay_those_of_the_three_cluster_fleet(four: fleetgen.Fleet) -> None:
    for path, tree in _THREE_CLUSTER_TREES.items():
        assert _git(four.repo, "rev-parse", f"{fleetgen.BASE_BRANCH}:{path}") == tree, path


def test_an_added_site_is_a_complete_cluster(four: fleetgen.Fleet) -> None:
    assert four.clusters == ("staging", "production", "edge", "edge-004")
    assert sorted(_git(four.repo, "ls-tree", "--name-only", "main", "clusters/").split()) == [
        "clusters/edge",
        "clusters/edge-004",
        "clusters/production",
        "clusters/staging",
    ]
    variables = yaml.safe_load(_git(four.repo, "show", "main:clusters/edge-004/cluster-vars.yaml"))
    assert variables["data"] == {
        "cluster_name": "edge-004",
        "cluster_domain": "edge-004.fleet.example",
        "tier": "edge",
    }
    overlays = _git(four.repo, "ls-tree", "--name-only", "main", "apps/edge-004/").split()
    assert len(overlays) == fleetgen.APPS_PER_CLUSTER
    assert four.expected_objects == _THREE_CLUSTER_OBJECTS // 3 * 4


def test_changes_touch_the_same_files_whatever_the_size(four: fleetgen.Fleet) -> None:
    changed = {
        change.name: _git(
            four.repo, "diff", "--name-only", four.base_sha, four.change_shas[change.name]
        ).split()
        for change in four.changes
    }
    app = four.apps[7].name
    assert changed["one-file"] == [f"apps/staging/{app}/kustomization.yaml"]
    assert changed["base"] == ["components/standard/security.yaml"]
    assert all("edge-004" not in path for path in changed["rename"])
    base = next(change for change in four.changes if change.name == "base")
    assert len(base.head_units) == 4 * sum(app.standard for app in four.apps)


def test_fewer_clusters_than_the_changes_need_is_refused() -> None:
    with pytest.raises(SystemExit, match="at least 3"):
        fleetgen.cluster_names(2)


def test_a_generated_fleet_is_taken_again_from_its_directory(four: fleetgen.Fleet) -> None:
    out = four.repo.parent

    again = fleetgen.generated(out, 4)

    assert again is not None
    assert (again.repo, again.chart_url, again.clusters) == (
        four.repo,
        four.chart_url,
        four.clusters,
    )
    assert (again.base_sha, again.change_shas, again.changes) == (
        four.base_sha,
        four.change_shas,
        four.changes,
    )
    assert again.expected_objects == four.expected_objects
    assert fleetgen.generated(out, 3) is None  # another size is another fleet
    assert fleetgen.generated(out / "nowhere", 4) is None


def test_a_fleet_whose_branches_moved_is_not_taken_again(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    out = tmp_path_factory.mktemp("moved") / "out"
    fleet = fleetgen.generate(out, clusters=3, apps=12)
    _git(fleet.repo, "branch", "-f", fleet.changes[0].branch, fleet.base_sha)

    assert fleetgen.generated(out, 3) is None
