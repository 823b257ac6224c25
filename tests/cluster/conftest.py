"""Fixtures local to the cluster tests: a fresh namespace per test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.cluster.kube import unique_name


@pytest.fixture
def namespace(kube_client: Any) -> Iterator[str]:
    """A new namespace for one test, deleted afterwards (without waiting)."""
    name = unique_name("t")
    core = k8s.CoreV1Api(kube_client)
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)
