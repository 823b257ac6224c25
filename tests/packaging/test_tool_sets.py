"""The pinned Go tool sets: the test run builds every set it needs and never the benchmark peer."""

from __future__ import annotations

from pathlib import Path

import pytest

from devenv import toolchain


def test_building_everything_leaves_out_the_on_demand_peer(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[str] = []

    def fake_ensure(tool: toolchain.ToolSet) -> Path:
        built.append(tool.name)
        return Path(tool.name)

    monkeypatch.setattr(toolchain, "ensure", fake_ensure)
    toolchain.ensure_all()
    assert "kustomize-controller" not in built
    assert {"k8s", "etcd", "kwok", "kustomize", "helm", "registry"} <= set(built)

    built.clear()
    toolchain.ensure_all(["kustomize-controller"])
    assert built == ["kustomize-controller"]


def test_the_peer_is_pinned_to_a_released_kustomize_controller() -> None:
    go_mod = (toolchain.TOOL_SETS["kustomize-controller"].module_dir / "go.mod").read_text()
    assert "tool github.com/fluxcd/kustomize-controller\n" in go_mod
    assert "\tgithub.com/fluxcd/kustomize-controller v1.7.3 // indirect\n" in go_mod
    assert toolchain.TOOL_SETS["kustomize-controller"].binaries == ("kustomize-controller",)
