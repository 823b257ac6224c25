"""Splitting a report into comment parts, and keeping those parts current."""

from __future__ import annotations

from core.vcs.comments import GITHUB_LIMIT, MAX_PARTS, marker, split, sync
from core.vcs.github import GitHubHost
from devenv.github_api import FakeGitHub


def report(sections: int, lines: int = 20, width: int = 100) -> str:
    body = "# Preview\n\n"
    for s in range(sections):
        body += f"## Cluster {s}\n\n<details>\n<summary>diff</summary>\n\n```diff\n"
        body += "".join(f"+ line {s}.{i} {'x' * width}\n" for i in range(lines))
        body += "```\n\n</details>\n\n"
    return body


def test_a_small_report_is_one_part_with_its_marker() -> None:
    parts = split(report(2), "summary", key="preview", limit=GITHUB_LIMIT)
    assert len(parts) == 1
    assert parts[0].startswith(marker("preview", 1) + "\n")
    assert "Part 1" not in parts[0]


def test_a_large_report_splits_within_the_limit_with_balanced_blocks() -> None:
    parts = split(report(20, lines=100), "summary", key="preview", limit=GITHUB_LIMIT)
    assert 1 < len(parts) <= MAX_PARTS
    for index, part in enumerate(parts, start=1):
        assert len(part) <= GITHUB_LIMIT
        assert part.startswith(marker("preview", index))
        assert f"_Part {index} of {len(parts)}_" in part
        assert part.count("```") % 2 == 0
        assert part.count("<details>") == part.count("</details>")


def test_one_oversized_section_is_split_inside_its_fence() -> None:
    parts = split(report(1, lines=2000), "summary", key="preview", limit=GITHUB_LIMIT)
    assert len(parts) > 1
    for part in parts:
        assert len(part) <= GITHUB_LIMIT
        assert part.count("```") % 2 == 0
        assert part.count("<details>") == part.count("</details>")


def test_a_report_too_large_for_any_split_falls_back_to_the_summary() -> None:
    parts = split(report(200, lines=200), "3 clusters change", key="preview", limit=GITHUB_LIMIT)
    assert len(parts) == 1
    assert "3 clusters change" in parts[0]
    assert "too large" in parts[0]


def test_sync_edits_in_place_then_shrinks_back_to_one_part(
    github: FakeGitHub, token_host: GitHubHost
) -> None:
    token_host.create_comment(1, "a human comment")
    sync(token_host, 1, split(report(1), "s", key="preview", limit=GITHUB_LIMIT), key="preview")
    first_id = max(github.repos["acme/fleet"].comments)
    big = split(report(20, lines=100), "s", key="preview", limit=GITHUB_LIMIT)
    sync(token_host, 1, big, key="preview")
    assert github.comment_bodies("acme/fleet") == ["a human comment", *big]
    assert first_id in github.repos["acme/fleet"].comments  # part 1 was edited, not replaced
    small = split(report(2), "s", key="preview", limit=GITHUB_LIMIT)
    sync(token_host, 1, small, key="preview")
    assert github.comment_bodies("acme/fleet") == ["a human comment", *small]
    assert first_id in github.repos["acme/fleet"].comments
