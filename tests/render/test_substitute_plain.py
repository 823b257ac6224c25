"""Text without a `$` has nothing to expand, and is still checked like any other."""

from __future__ import annotations

import pytest

from core.render.substitute import SubstitutionError, expand

PLAIN = "kind: ConfigMap\ndata:\n  greeting: hello {world} #1 %s\n"


def test_plain_text_comes_back_unchanged_and_nothing_is_secret() -> None:
    expansion = expand(PLAIN, {"token": "s3cret"}, secret_variables={"token"})

    assert expansion.text == PLAIN
    assert expansion.secret_outputs == frozenset()


def test_plain_text_still_refuses_an_invalid_variable_name() -> None:
    # As Flux: the names are checked whatever the object holds.
    with pytest.raises(SubstitutionError, match="var name is invalid"):
        expand(PLAIN, {"1bad": "x"})


def test_one_dollar_is_enough_to_expand() -> None:
    assert expand("a: ${name}\n", {"name": "web"}).text == "a: web\n"
    assert expand("a: $${name}\n", {}).text == "a: ${name}\n"
    with pytest.raises(SubstitutionError, match="strict mode"):
        expand("a: ${missing}\n", {})
