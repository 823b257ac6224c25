"""The masking boundary and the cleartext build for applying.

Renderers return cleartext objects with the paths of their Secret-derived values; `Clear.masked` is
the one place they become tokens, and `core.render.clear` builds for the apply path without the
render cache, with errors scrubbed of the Secret values it was given.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core.cleartext import Clear, SecretPaths
from core.errors import TidegateError
from core.host.files import DirectorySource
from core.model import ObjectRef
from core.render import kustomize
from core.render.clear import build_kustomization
from core.secrets import MASK, Masker, is_token
from tests.render.helpers import ks_spec, write_tree

CANARY = "canary-51c0e2aa-apply"


def test_masking_replaces_exactly_the_recorded_values_and_keys() -> None:
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "a", "labels": {CANARY: "x"}},
        "data": {"url": f"https://{CANARY}@host", "list": ["keep", CANARY], "plain": "shown"},
    }
    paths = SecretPaths(
        values=frozenset({("data", "url"), ("data", "list", 1)}),
        keys=frozenset({("metadata", "labels", CANARY)}),
    )
    masker = Masker(b"b" * 32)

    masked = Clear(body, "app/cm.yaml", paths).masked(masker).body

    assert CANARY not in repr(masked)
    assert masked["data"]["url"] == masker.token(f"https://{CANARY}@host".encode())
    assert masked["data"]["list"][0] == "keep"
    assert is_token(masked["data"]["list"][1])
    assert masked["data"]["plain"] == "shown"
    [label] = masked["metadata"]["labels"]
    assert is_token(label)
    # The cleartext object is untouched: it is what gets applied.
    assert body["data"]["url"] == f"https://{CANARY}@host"


def test_secrets_are_masked_by_kind_and_cleartext_never_shows_in_a_repr() -> None:
    secret = Clear(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "eA=="}},
        None,
    )

    assert is_token(secret.masked(Masker(b"c" * 32)).body["data"]["k"])
    assert "eA==" not in repr(secret)
    assert "eA==" not in str([secret])


def _secret_app(root: Path) -> None:
    write_tree(
        root,
        {
            "app/cm.yaml": """
                apiVersion: v1
                kind: ConfigMap
                metadata: {name: c, namespace: a}
                data: {token: "${TOKEN}", public: "${PUBLIC}"}
            """,
            "app/secret.yaml": """
                apiVersion: v1
                kind: Secret
                metadata: {name: s, namespace: a}
                stringData: {token: "${TOKEN}"}
            """,
        },
    )


def test_the_apply_build_is_cleartext_and_masks_to_what_a_preview_shows(
    tmp_path: Path, kustomize_bin: Path
) -> None:
    _secret_app(tmp_path / "repo")

    built = build_kustomization(
        ks_spec("app"),
        DirectorySource(tmp_path / "repo"),
        kustomize_bin=kustomize_bin,
        variables={"TOKEN": CANARY, "PUBLIC": "visible"},
        secret_values={"TOKEN": CANARY},
        work_root=tmp_path,
    )

    clear = {ObjectRef.of(obj.body): obj for obj in built.objects}
    configmap = clear[ObjectRef("", "ConfigMap", "a", "c")]
    assert configmap.body["data"] == {"token": CANARY, "public": "visible"}
    assert configmap.secret.values == {("data", "token")}
    masker = Masker(b"d" * 32)
    masked = [obj.masked(masker).body for obj in built.objects]
    assert CANARY not in repr(masked)
    assert {"token": masker.token(CANARY.encode()), "public": "visible"} in [
        body.get("data") for body in masked
    ]
    # Nothing of the build is left behind in the work root.
    assert [p.name for p in tmp_path.iterdir()] == ["repo"]


def test_apply_build_errors_never_quote_the_secret_values_it_was_given(
    tmp_path: Path, kustomize_bin: Path
) -> None:
    write_tree(
        tmp_path / "repo",
        {
            "app/one.yaml": "apiVersion: v1\nkind: ConfigMap\n"
            "metadata: {name: '${NAME}', namespace: a}\n",
            # Different names to kustomize, the same one after substitution.
            "app/two.yaml": "apiVersion: v1\nkind: ConfigMap\n"
            "metadata: {name: '${NAME:0:100}', namespace: a}\n",
        },
    )

    with pytest.raises(TidegateError) as caught:
        build_kustomization(
            ks_spec("app"),
            DirectorySource(tmp_path / "repo"),
            kustomize_bin=kustomize_bin,
            variables={"NAME": CANARY},
            secret_values={"NAME": CANARY},
        )

    message = str(caught.value)
    assert CANARY not in message
    assert f"ConfigMap/a/{MASK} is defined twice" in message


def test_apply_build_scrubs_a_value_an_error_would_quote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def quoting(*args: object, **kwargs: object) -> None:
        raise TidegateError(f"kustomize build failed near {CANARY}")

    monkeypatch.setattr(kustomize, "render_kustomization", quoting)

    with pytest.raises(TidegateError) as caught:
        build_kustomization(
            ks_spec("app"),
            DirectorySource(tmp_path),
            kustomize_bin=tmp_path / "kustomize",
            variables={"TOKEN": CANARY},
            secret_values={"TOKEN": CANARY},
        )

    assert str(caught.value) == f"kustomize build failed near {MASK}"
