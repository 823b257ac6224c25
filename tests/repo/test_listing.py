"""A `Listing` keeps its ids uncomputed through `Tree`, `Artifacts` and their views.

The listing here counts the ids asked for (it is the seam itself): the repository's view of an
artifact with ignore rules asks for the ids of the ignore files and of the files read, and of
nothing else, while it lists, filters and digests exactly as a plain mapping would.
"""

from __future__ import annotations

from collections.abc import Iterator

from core.repo.artifacts import Artifacts
from core.repo.git import Listing, Tree

CONTENT = {
    ".sourceignore": b"drafts/\n",
    "apps/web/deploy.yaml": b"kind: ConfigMap\n",
    "apps/api/deploy.yaml": b"kind: Secret\n",
    "drafts/idea.yaml": b"kind: ConfigMap\n",
}


class _Counted(Listing):
    def __init__(self) -> None:
        self.asked: list[str] = []

    def __getitem__(self, path: str) -> str:
        if path not in CONTENT:
            raise KeyError(path)
        self.asked.append(path)
        return f"id-{path}"

    def __iter__(self) -> Iterator[str]:
        return iter(CONTENT)

    def __len__(self) -> int:
        return len(CONTENT)

    def __contains__(self, path: object) -> bool:
        return path in CONTENT


def _read(blob: str) -> bytes:
    return CONTENT[blob.removeprefix("id-")]


def test_ids_are_asked_for_only_when_needed_and_agree_with_a_plain_mapping() -> None:
    listing = _Counted()
    view = Artifacts(Tree("r", listing), _read).repository()
    assert sorted(view.files) == [".sourceignore", "apps/api/deploy.yaml", "apps/web/deploy.yaml"]
    assert view.is_dir("apps/web")
    assert not view.is_file("drafts/idea.yaml")
    assert set(listing.asked) == {".sourceignore"}  # the rules are read; nothing else is hashed
    assert view.read("apps/web/deploy.yaml") == b"kind: ConfigMap\n"
    assert set(listing.asked) == {".sourceignore", "apps/web/deploy.yaml"}

    plain = Artifacts(Tree("r", {p: f"id-{p}" for p in CONTENT}), _read).repository()
    for paths in (["apps/web/deploy.yaml"], ["apps/web/deploy.yaml", "drafts/idea.yaml"], None):
        assert view.digest(paths) == plain.digest(paths)
    assert dict(view.files) == dict(plain.files)
