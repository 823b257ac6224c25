"""The `policies:` section of .tidegate.yaml: parsing, profiles, and base-wins merging."""

from __future__ import annotations

import pytest

from core.errors import InputError
from core.findings import Severity
from policies.config import PolicyConfig, glob_match, parse_config

CONFIG = """
preview: {anything: owned by another part}
policies:
  rules:
    GP017: {severity: notice}
    GP019: {enabled: false}
    GP025: {maxDeletes: 20}
  profiles:
  - name: production
    paths: ["clusters/production/**", "apps/prod-*/**"]
    rules:
      GP017: {severity: error}
  - name: dev
    paths: ["clusters/dev/**"]
"""


def test_other_top_level_keys_are_left_alone_and_rules_parse() -> None:
    config = parse_config(CONFIG)
    assert config.rule("GP017").severity is Severity.NOTICE
    assert config.rule("GP019").enabled is False
    assert config.rule("GP025").options == {"maxDeletes": 20}
    assert config.rule("GP001") == config.rule("GP001", "production")


def test_profiles_match_cluster_or_file_and_override_defaults() -> None:
    config = parse_config(CONFIG)
    assert config.profile_of("clusters/production", None) == "production"
    assert config.profile_of("clusters/staging", "apps/prod-eu/deploy.yaml") == "production"
    assert config.profile_of("clusters/dev", None) == "dev"
    assert config.profile_of("clusters/staging", "apps/base/x.yaml") == ""
    assert config.rule("GP017", "production").severity is Severity.ERROR
    assert config.rule("GP017", "dev").severity is Severity.NOTICE
    assert config.rule("GP025", "production").options == {"maxDeletes": 20}


def test_empty_and_absent_sections_mean_defaults() -> None:
    assert parse_config("") == PolicyConfig()
    assert parse_config("preview: {}\n") == PolicyConfig()


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("policies: {rule: {}}", "policies.rule"),
        ("policies: {rules: {GP001: {severity: fatal}}}", "policies.rules.GP001.severity"),
        ("policies: {rules: {GP001: {enabled: 'no'}}}", "policies.rules.GP001.enabled"),
        ("policies: {profiles: [{name: p}]}", "policies.profiles[0].paths"),
        ("policies: {profiles: [{paths: [a]}]}", "policies.profiles[0].name"),
        ("policies: {kubernetesVersion: '2.0'}", "policies.kubernetesVersion"),
        ("policies: []", "policies"),
    ],
)
def test_mistakes_name_file_and_field(text: str, field: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_config(text, file=".tidegate.yaml")
    assert caught.value.file == ".tidegate.yaml"
    assert caught.value.field == field


def test_head_may_only_make_the_base_stricter() -> None:
    base = parse_config(CONFIG)
    head = parse_config(
        """
policies:
  rules:
    GP017: {severity: warning}
    GP019: {enabled: true}
    GP010: {severity: notice, enabled: false}
    GP025: {maxDeletes: 100000}
  profiles:
  - name: production
    paths: ["nowhere/**"]
    rules: {GP017: {severity: notice}}
"""
    )
    merged = base.strictest(head)
    # notice at base, warning at head: the head is stricter and wins.
    assert merged.rule("GP017").effective(Severity.NOTICE) is Severity.WARNING
    assert merged.rule("GP019").enabled is True
    # notice at head for a rule whose default is error: a weakening, ignored.
    assert merged.rule("GP010").effective(Severity.ERROR) is Severity.ERROR
    assert merged.rule("GP010").effective(Severity.NOTICE) is Severity.NOTICE
    assert merged.rule("GP010").enabled is None
    assert merged.rule("GP025").options == {"maxDeletes": 20}  # options from base only
    assert merged.rule("GP017", "production").effective(Severity.NOTICE) is Severity.ERROR
    assert merged.profiles[0].paths == base.profiles[0].paths


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("clusters/production/**", "clusters/production", True),
        ("clusters/production/**", "clusters/production/apps/x.yaml", True),
        ("clusters/production/**", "clusters/production-eu", False),
        ("clusters/*/apps", "clusters/dev/apps", True),
        ("clusters/*/apps", "clusters/dev/x/apps", False),
        ("**/secrets/*.yaml", "a/b/secrets/s.yaml", True),
        ("**/secrets/*.yaml", "secrets/s.yaml", True),
        ("apps/?", "apps/a", True),
        ("apps/[ab]", "apps/a", False),
    ],
)
def test_globs(pattern: str, path: str, matches: bool) -> None:
    assert glob_match(pattern, path) is matches
