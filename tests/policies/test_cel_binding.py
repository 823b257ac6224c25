"""Variables inlined with cel.bind evaluate as the API server's lazy variables do."""

from __future__ import annotations

from typing import Any

import pytest

from policies.cel.binding import bind_variables
from policies.cel.engine import Engine, EvalError

ENGINE = Engine()
VARIABLES = [
    ("labels", "object.metadata.?labels.orValue({})"),
    ("team", "variables.labels.?team.orValue('none')"),
    ("broken", "object.metadata.missing"),
]
OBJECT = {"metadata": {"name": "api", "labels": {"team": "web"}}}


def _run(expression: str) -> Any:
    bound = bind_variables(expression, VARIABLES)
    assert bound is not None
    return ENGINE.compile(bound).evaluate(ENGINE.activation({"object": OBJECT}))


def test_only_used_variables_are_bound_with_their_dependencies_first() -> None:
    assert bind_variables("variables.team == 'web'", VARIABLES) == (
        "cel.bind(tgvar_labels, object.metadata.?labels.orValue({}), "
        "cel.bind(tgvar_team, tgvar_labels.?team.orValue('none'), tgvar_team == 'web'))"
    )
    assert _run("variables.team == 'web'") is True


def test_a_failing_variable_fails_only_expressions_whose_result_needs_it() -> None:
    assert _run("true || variables.broken == 'x'") is True
    assert isinstance(_run("variables.broken == 'x'"), EvalError)


def test_string_literals_are_not_rewritten() -> None:
    assert _run("'variables.team' + \"variables.team\" + variables.team") == (
        "variables.teamvariables.teamweb"
    )


@pytest.mark.parametrize(
    "expression",
    ["variables['team'] == 'web'", "has(variables.team)", "variables.undeclared == 1"],
)
def test_other_uses_of_variables_are_left_to_one_by_one_evaluation(expression: str) -> None:
    assert bind_variables(expression, VARIABLES) is None
