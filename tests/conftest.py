"""Shared fixtures, each group in its own plugin module under tests/fixtures/."""

pytest_plugins = [
    "tests.fixtures.tools",
    "tests.fixtures.controlplane",
    "tests.fixtures.gitserver",
    "tests.fixtures.github",
    "tests.fixtures.registry",
    "tests.fixtures.postgres",
    "tests.fixtures.coverage_summary",
]
