"""Flux's ignore rules: defaults, .sourceignore scoping, spec.ignore, last match wins."""

from __future__ import annotations

from core.repo import sourceignore

FILES = [
    ".github/workflows/ci.yaml",
    ".gitignore",
    ".sops.yaml",
    "apps/base/deploy.yaml",
    "apps/base/logo.png",
    "apps/prod/.sourceignore",
    "apps/prod/deploy.yaml",
    "apps/prod/notes/draft.yaml",
    "clusters/prod/flux.yaml",
    "docs/readme.yaml",
    "infrastructure/charts.tar.gz",
]


def kept(files: dict[str, str], spec_ignore: str | None = None) -> list[str]:
    return sorted(sourceignore.included(files, lambda path: files[path].encode(), spec_ignore))


def test_defaults_drop_ci_images_archives_and_tool_configuration() -> None:
    files = {path: "" for path in FILES if not path.endswith(".sourceignore")}
    assert kept(files) == [
        "apps/base/deploy.yaml",
        "apps/prod/deploy.yaml",
        "apps/prod/notes/draft.yaml",
        "clusters/prod/flux.yaml",
        "docs/readme.yaml",
    ]


def test_a_sourceignore_pattern_replaces_the_defaults_but_not_the_vcs_files() -> None:
    files = {path: "" for path in FILES if not path.endswith(".sourceignore")}
    files[".sourceignore"] = "# only docs\ndocs/\n"
    assert kept(files) == [
        ".github/workflows/ci.yaml",
        ".sops.yaml",
        ".sourceignore",
        "apps/base/deploy.yaml",
        "apps/base/logo.png",
        "apps/prod/deploy.yaml",
        "apps/prod/notes/draft.yaml",
        "clusters/prod/flux.yaml",
        "infrastructure/charts.tar.gz",
    ]


def test_allow_list_with_negations_keeps_reincluded_directories() -> None:
    files = {path: "" for path in FILES}
    files[".sourceignore"] = "/*\n!/apps/\n!/clusters/\n"
    files["apps/prod/.sourceignore"] = ""
    assert kept(files) == [
        "apps/base/deploy.yaml",
        "apps/base/logo.png",
        "apps/prod/.sourceignore",
        "apps/prod/deploy.yaml",
        "apps/prod/notes/draft.yaml",
        "clusters/prod/flux.yaml",
    ]


def test_a_nested_sourceignore_applies_only_below_its_directory() -> None:
    files = {path: "" for path in FILES}
    files["apps/prod/.sourceignore"] = "notes/\n/deploy.yaml\n"
    files["docs/deploy.yaml"] = ""
    result = kept(files)
    assert "apps/prod/notes/draft.yaml" not in result
    assert "apps/prod/deploy.yaml" not in result
    assert "apps/base/deploy.yaml" in result
    assert "docs/deploy.yaml" in result


def test_spec_ignore_comes_last_and_wins() -> None:
    files = {path: "" for path in FILES}
    files[".sourceignore"] = "docs/\n"
    result = kept(files, spec_ignore="!docs/\napps/base/\n")
    assert "docs/readme.yaml" in result
    assert "apps/base/deploy.yaml" not in result
    assert ".gitignore" not in result


def test_blank_spec_ignore_keeps_the_defaults() -> None:
    files = {path: "" for path in FILES if not path.endswith(".sourceignore")}
    assert ".github/workflows/ci.yaml" not in kept(files, spec_ignore="\n# nothing\n")


def test_the_fast_default_rules_agree_with_the_patterns() -> None:
    rules = sourceignore.IgnoreRules.build({})
    names = [
        *sourceignore.DEFAULT_PATTERNS,
        *sourceignore.VCS_PATTERNS,
        "deploy.yaml",
        "logo.PNG",
        "a.tar.gz",
        "x.tgz",
        "github",
        ".github.yaml",
        "cloudbuild.yml",
        ".sops.yml",
    ]
    paths = []
    for name in names:
        clean = name.removeprefix("**/").removeprefix("*").rstrip("/") or "x"
        for parent in ("", "apps/", "apps/.github/", "a/.git/b/", ".circleci/x/"):
            paths += [f"{parent}{clean}", f"{parent}{clean}/inner.yaml", f"{parent}file{clean}"]
    assert len(paths) > 300
    disagree = [p for p in paths if rules.ignored(p) != rules.matched(p)]
    assert disagree == []
    assert rules.ignored("apps/.github/workflows/ci.yaml")
    assert not rules.ignored("apps/deploy.yaml")


def test_the_default_rules_are_compiled_once() -> None:
    # Every revision of a repository without `.sourceignore` asks for them.
    assert sourceignore.IgnoreRules.build({}) is sourceignore.IgnoreRules.build({})
    assert sourceignore.IgnoreRules.build({}, "*.md") is not sourceignore.IgnoreRules.build(
        {}, "*.md"
    )
