"""YAML budgets checked before anything is built: size, document size, depth and aliases."""

from __future__ import annotations

import threading

import pytest

from cli import main as cli_main
from core import yamlio
from core.errors import BudgetError


def _deep_flow(levels: int) -> str:
    return "a: " + "[" * levels + "]" * levels + "\n"


def _deep_compact(levels: int) -> str:
    return "- " * levels + "x\n"


def _deep_block(levels: int) -> str:
    return "".join(f"{'  ' * i}k{i}:\n" for i in range(levels)) + f"{'  ' * levels}leaf: 1\n"


def _billion_laughs() -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 10):
        refs = ", ".join([f"*a{i - 1}"] * 10)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("levels", [300, 25_000])
@pytest.mark.parametrize("shape", [_deep_flow, _deep_compact])
def test_deep_nesting_is_refused_before_it_is_built(shape: object, levels: int) -> None:
    text = shape(levels)  # type: ignore[operator]
    with pytest.raises(BudgetError) as caught:
        yamlio.load(text)
    assert "nested deeper than 100 levels" in str(caught.value)
    assert "--max-yaml-depth" in str(caught.value)


def test_deep_nesting_in_a_worker_thread_does_not_crash_the_process() -> None:
    # Renders parse in worker threads, whose C stack is where libyaml's composer would overflow.
    errors: list[BaseException] = []

    def parse() -> None:
        try:
            list(yamlio.load_all(_deep_flow(100_000)))
        except BudgetError as exc:
            errors.append(exc)

    worker = threading.Thread(target=parse)
    worker.start()
    worker.join()
    assert len(errors) == 1


def test_nesting_within_the_budget_loads() -> None:
    assert yamlio.load(_deep_flow(99)) is not None
    assert yamlio.load(_deep_compact(99)) is not None
    data = yamlio.load(_deep_block(99))
    assert "k0" in data


def test_the_depth_budget_can_be_raised() -> None:
    budget = yamlio.YamlLimits(max_depth=150)
    assert yamlio.load(_deep_flow(140), budget=budget) is not None


def test_an_alias_explosion_is_refused() -> None:
    with pytest.raises(BudgetError) as caught:
        yamlio.load(_billion_laughs())
    assert "aliases expand to more than 100000 nodes" in str(caught.value)
    assert "--max-yaml-alias-nodes" in str(caught.value)


def test_aliases_count_towards_depth() -> None:
    deep = "[" * 60 + "]" * 60
    text = f"base: &deep {deep}\nnested: {'[' * 50}*deep{']' * 50}\n"
    with pytest.raises(BudgetError, match="nested deeper than 100"):
        yamlio.load(text)


def test_ordinary_anchors_still_load() -> None:
    data = yamlio.load("defaults: &d {replicas: 2}\nweb: *d\napi: *d\n")
    assert data["web"] == {"replicas": 2}


def test_input_over_the_size_budget_is_refused_unread() -> None:
    budget = yamlio.YamlLimits(max_bytes=1000)
    with pytest.raises(BudgetError) as caught:
        yamlio.load("a: " + "x" * 2000, budget=budget)
    assert "exceeds the YAML size budget of 1000 bytes" in str(caught.value)
    assert "--max-yaml-bytes" in str(caught.value)


@pytest.mark.parametrize("indirect", [False, True])
def test_one_document_over_its_budget_is_refused(indirect: bool) -> None:
    budget = yamlio.YamlLimits(max_document_bytes=100)
    big = "a: &x " + "y" * 200 if indirect else "a: " + "y" * 200
    stream = f"small: 1\n---\n{big}\n---\nsmall: 2\n"
    with pytest.raises(BudgetError) as caught:
        list(yamlio.load_all(stream, budget=budget))
    assert "document size budget of 100 bytes" in str(caught.value)
    assert "--max-yaml-document-bytes" in str(caught.value)


@pytest.mark.parametrize(
    "text",
    [
        "a:\r" + "".join(" " * i + f"k{i}:\r" for i in range(1, 120)) + " " * 120 + "x: 1\r",
        "a:\u2028" + "".join(" " * i + f"k{i}:\u2028" for i in range(1, 120)) + "x: 1\n",
        "\ufeff" + _deep_block(120),
        "- " * 120 + "x\n",
    ],
    ids=["carriage-returns", "line-separators", "byte-order-mark", "compact-sequences"],
)
def test_unusual_layouts_do_not_slip_past_the_depth_check(text: str) -> None:
    with pytest.raises(BudgetError, match="nested deeper than 100"):
        list(yamlio.load_all(text))
    with pytest.raises(BudgetError, match="nested deeper than 100"):
        list(yamlio.load_all(text.encode()))


def test_syntax_errors_are_still_reported_by_the_parser() -> None:
    with pytest.raises(yamlio.YAMLError):
        yamlio.load("a: [unclosed\n")


def test_the_depth_budget_has_a_ceiling() -> None:
    with pytest.raises(ValueError, match="between 1 and 200"):
        yamlio.configure(yamlio.YamlLimits(max_depth=500))
    assert yamlio.limits() == yamlio.DEFAULT_LIMITS


def test_a_preview_gives_the_process_its_yaml_limits_back() -> None:
    before = yamlio.limits()
    # Fails early (no repository), after the flags were applied.
    code = cli_main.main(["preview", "--repo", "/nonexistent-repository", "--max-yaml-bytes", "1K"])
    assert code == 2
    assert yamlio.limits() == before
