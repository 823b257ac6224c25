"""Rendering Flux Kustomizations with the real kustomize binary."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from core.cleartext import Clear
from core.errors import InputError, RenderError
from core.host.files import DirectorySource
from core.model import Manifest, ObjectRef
from core.render.kustomize import render_kustomization
from core.secrets import Masker, is_token
from core.units import KustomizationSpec
from tests.render.helpers import ks_spec, write_tree

DEPLOY = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.25
"""

SERVICE = """
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  ports: [{port: 80}]
"""


def render(
    tmp_path: Path,
    kustomize_bin: Path,
    spec: KustomizationSpec,
    *,
    variables: dict[str, str] | None = None,
    secret_variables: frozenset[str] = frozenset(),
    masker: Masker | None = None,
) -> Masked:
    """Render, and mask as the unit renderer does at its boundary."""
    workdir = tmp_path / "work"
    workdir.mkdir(exist_ok=True)
    rendered = render_kustomization(
        spec,
        DirectorySource(tmp_path / "repo"),
        kustomize=kustomize_bin,
        workdir=workdir,
        variables=variables,
        secret_variables=secret_variables,
    )
    mask = masker or Masker(b"k" * 32)
    return Masked(
        tuple(obj.masked(mask) for obj in rendered.objects), rendered.inputs, rendered.objects
    )


@dataclass(frozen=True)
class Masked:
    """A render's masked objects (what everything but the apply path sees) and its cleartext."""

    manifests: tuple[Manifest, ...]
    inputs: frozenset[str]
    clear: tuple[Clear, ...]


def by_ref(rendered: Masked) -> dict[ObjectRef, Manifest]:
    return {m.ref: m for m in rendered.manifests}


def overlay_repo(root: Path) -> None:
    write_tree(
        root / "repo",
        {
            "apps/base/kustomization.yaml": "resources: [deploy.yaml, svc.yaml]\n",
            "apps/base/deploy.yaml": DEPLOY,
            "apps/base/svc.yaml": SERVICE,
            "apps/comp/kustomization.yaml": """
                apiVersion: kustomize.config.k8s.io/v1alpha1
                kind: Component
                configMapGenerator:
                - name: settings
                  literals: [mode=fast]
            """,
            "apps/prod/kustomization.yaml": """
                resources: [../base]
                components: [../comp]
                images:
                - name: nginx
                  newTag: "1.26"
                  newName: mirror/nginx
                patches:
                - target: {kind: Deployment}
                  patch: |
                    - op: replace
                      path: /spec/replicas
                      value: 3
            """,
            "apps/other/unrelated.yaml": SERVICE,
        },
    )


def test_overlay_with_base_and_component(tmp_path: Path, kustomize_bin: Path) -> None:
    overlay_repo(tmp_path)
    rendered = render(tmp_path, kustomize_bin, ks_spec("./apps/prod", targetNamespace="prod"))
    objects = by_ref(rendered)
    deploy = objects[ObjectRef("apps", "Deployment", "prod", "web")]
    assert deploy.body["spec"]["replicas"] == 3
    image = deploy.body["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "mirror/nginx:1.26"
    assert deploy.source == "apps/base/deploy.yaml"
    configmaps = [m for m in rendered.manifests if m.ref.kind == "ConfigMap"]
    assert len(configmaps) == 1
    assert configmaps[0].source == "apps/comp/kustomization.yaml"
    assert configmaps[0].ref.namespace == "prod"
    for manifest in rendered.manifests:
        labels = manifest.body["metadata"]["labels"]
        assert labels["kustomize.toolkit.fluxcd.io/name"] == "apps"
        assert labels["kustomize.toolkit.fluxcd.io/namespace"] == "flux-system"
        assert "config.kubernetes.io/origin" not in manifest.body["metadata"].get("annotations", {})
    assert "apps/other/unrelated.yaml" not in rendered.inputs
    assert "apps/comp/kustomization.yaml" in rendered.inputs


def test_spec_fields_are_merged_the_way_flux_does(tmp_path: Path, kustomize_bin: Path) -> None:
    overlay_repo(tmp_path)
    spec = ks_spec(
        "apps/prod",
        targetNamespace="team",
        namePrefix="pre-",
        nameSuffix="-suf",
        images=[{"name": "nginx", "newTag": "2.0"}],
        patches=[
            {
                "target": {"kind": "Service"},
                "patch": "apiVersion: v1\nkind: Service\nmetadata:\n  name: any\n"
                "  labels: {patched: 'yes'}\n",
            }
        ],
        commonMetadata={
            "labels": {"team": "a", "kustomize.toolkit.fluxcd.io/name": "override"},
            "annotations": {"owner": "ops"},
        },
    )
    objects = by_ref(render(tmp_path, kustomize_bin, spec))
    deploy = objects[ObjectRef("apps", "Deployment", "team", "pre-web-suf")]
    # spec.images replaces the file's entry of the same name wholesale (newName is lost).
    assert deploy.body["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:2.0"
    assert deploy.body["spec"]["replicas"] == 3  # the file's own patch still applies
    service = objects[ObjectRef("", "Service", "team", "pre-web-suf")]
    labels = service.body["metadata"]["labels"]
    assert labels["patched"] == "yes"
    assert labels["team"] == "a"
    assert labels["kustomize.toolkit.fluxcd.io/name"] == "override"
    assert service.body["metadata"]["annotations"] == {"owner": "ops"}


def test_spec_components_are_appended(tmp_path: Path, kustomize_bin: Path) -> None:
    write_tree(
        tmp_path / "repo",
        {
            "app/kustomization.yaml": "resources: [svc.yaml]\n",
            "app/svc.yaml": SERVICE.replace("name: web", "name: web\n  namespace: default"),
            "extras/kustomization.yaml": """
                apiVersion: kustomize.config.k8s.io/v1alpha1
                kind: Component
                commonLabels: {extra: "true"}
            """,
        },
    )
    spec = ks_spec("app", components=["../extras", "../missing"], ignoreMissingComponents=True)
    rendered = render(tmp_path, kustomize_bin, spec)
    (service,) = rendered.manifests
    assert service.body["metadata"]["labels"]["extra"] == "true"
    assert "extras/kustomization.yaml" in rendered.inputs
    with pytest.raises(RenderError, match="kustomize build failed"):
        render(tmp_path, kustomize_bin, ks_spec("app", components=["../missing"]))


def test_generated_kustomization(tmp_path: Path, kustomize_bin: Path) -> None:
    write_tree(
        tmp_path / "repo",
        {
            "plain/deploy.yaml": DEPLOY,
            "plain/more/svc.yml": SERVICE,
            "plain/notes.txt": "ignored",
            "plain/.gitlab-ci.yml": "stages: [build]\n",
            "plain/nested/kustomization.yaml": "resources: [cm.yaml]\n",
            "plain/nested/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
        },
    )
    rendered = render(tmp_path, kustomize_bin, ks_spec("plain", targetNamespace="apps"))
    refs = {m.ref for m in rendered.manifests}
    assert refs == {
        ObjectRef("apps", "Deployment", "apps", "web"),
        ObjectRef("", "Service", "apps", "web"),
        ObjectRef("", "ConfigMap", "apps", "c"),
    }
    sources = {m.ref.kind: m.source for m in rendered.manifests}
    assert sources == {
        "Deployment": "plain/deploy.yaml",
        "Service": "plain/more/svc.yml",
        "ConfigMap": "plain/nested/cm.yaml",
    }
    # The repository itself is never modified.
    assert not (tmp_path / "repo" / "plain" / "kustomization.yaml").exists()


def test_empty_generated_directory_renders_nothing(tmp_path: Path, kustomize_bin: Path) -> None:
    (tmp_path / "repo" / "empty").mkdir(parents=True)
    assert render(tmp_path, kustomize_bin, ks_spec("empty")).manifests == ()


def test_non_kubernetes_yaml_in_generated_directory(tmp_path: Path, kustomize_bin: Path) -> None:
    write_tree(tmp_path / "repo", {"plain/values.yaml": "replicas: 3\n"})
    with pytest.raises(RenderError, match=r"failed to decode Kubernetes YAML from plain/values"):
        render(tmp_path, kustomize_bin, ks_spec("plain"))


def test_missing_path_names_kustomization_and_file(tmp_path: Path, kustomize_bin: Path) -> None:
    (tmp_path / "repo").mkdir()
    with pytest.raises(RenderError) as caught:
        render(tmp_path, kustomize_bin, ks_spec("./apps/nowhere"))
    message = str(caught.value)
    assert "kustomization path not found: ./apps/nowhere" in message
    assert "Kustomization/flux-system/apps" in message
    assert "clusters/prod/apps.yaml" in message


def test_spec_path_is_joined_onto_the_root_as_flux_does(
    tmp_path: Path, kustomize_bin: Path
) -> None:
    overlay_repo(tmp_path)
    for path in ("/apps/base", "./apps/base/", "apps/base"):
        spec = ks_spec(path, targetNamespace="prod")
        objects = by_ref(render(tmp_path, kustomize_bin, spec))
        assert ObjectRef("apps", "Deployment", "prod", "web") in objects


def test_spec_path_never_leaves_the_repository(tmp_path: Path, kustomize_bin: Path) -> None:
    # securejoin, as Flux joins spec.path: `..` stops at the root instead of leaving it.
    overlay_repo(tmp_path)
    write_tree(tmp_path / "repo", {"outside/cm.yaml": CONFIGMAP.format(name="inside")})
    write_tree(tmp_path, {"outside/cm.yaml": CONFIGMAP.format(name="host-file")})
    objects = by_ref(render(tmp_path, kustomize_bin, ks_spec("./apps/../../outside")))
    assert {ref.name for ref in objects} == {"inside"}
    with pytest.raises(RenderError) as caught:
        render(tmp_path, kustomize_bin, ks_spec("../../../nowhere"))
    assert "kustomization path not found: ../../../nowhere" in str(caught.value)
    assert "Kustomization/flux-system/apps" in str(caught.value)


CONFIGMAP = """
    apiVersion: v1
    kind: ConfigMap
    metadata: {{name: {name}, namespace: apps}}
    data: {{a: b}}
"""


def test_invalid_kustomization_yaml(tmp_path: Path, kustomize_bin: Path) -> None:
    write_tree(tmp_path / "repo", {"app/kustomization.yaml": "resources: [\n"})
    with pytest.raises(InputError) as caught:
        render(tmp_path, kustomize_bin, ks_spec("app"))
    assert caught.value.file == "app/kustomization.yaml"


def test_build_errors_name_repository_paths_not_workdir(
    tmp_path: Path, kustomize_bin: Path
) -> None:
    write_tree(tmp_path / "repo", {"app/kustomization.yaml": "resources: [missing.yaml]\n"})
    with pytest.raises(RenderError) as caught:
        render(tmp_path, kustomize_bin, ks_spec("app"))
    message = str(caught.value)
    assert "missing.yaml" in message
    assert str(tmp_path) not in message


def test_duplicates_name_both_files(tmp_path: Path, kustomize_bin: Path) -> None:
    write_tree(
        tmp_path / "repo",
        {
            "dup/a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: x}\n",
            "dup/b.yaml": (
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: x}\ndata: {k: v}\n"
            ),
        },
    )
    # kustomize refuses the same id itself; objects that differ only by apiVersion are ours.
    with pytest.raises(RenderError, match=r"already registered id.*dup/b.yaml"):
        render(tmp_path, kustomize_bin, ks_spec("dup"))
    write_tree(
        tmp_path / "repo",
        {
            "dup2/a.yaml": "apiVersion: example.com/v1\nkind: W\nmetadata: {name: w}\n",
            "dup2/b.yaml": "apiVersion: example.com/v2\nkind: W\nmetadata: {name: w}\n",
        },
    )
    with pytest.raises(RenderError) as caught:
        render(tmp_path, kustomize_bin, ks_spec("dup2"))
    assert "dup2/a.yaml" in str(caught.value)
    assert "dup2/b.yaml" in str(caught.value)


def test_missing_name_is_refused_naming_the_file(tmp_path: Path, kustomize_bin: Path) -> None:
    write_tree(
        tmp_path / "repo",
        {
            "app/kustomization.yaml": "resources: [cm.yaml]\n",
            "app/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: '${NAME:=}'}\n",
        },
    )
    with pytest.raises(RenderError, match=r"ConfigMap in app/cm.yaml has no metadata.name"):
        render(tmp_path, kustomize_bin, ks_spec("app"), variables={"OTHER": "x"})


def test_namespaced_object_without_namespace_fails_like_flux(
    tmp_path: Path, kustomize_bin: Path
) -> None:
    write_tree(
        tmp_path / "repo",
        {
            "app/svc.yaml": SERVICE,
            "app/ns.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: n}\n",
            "app/cr.yaml": "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n",
        },
    )
    with pytest.raises(RenderError, match=r"Service/web namespace not specified \(in app/svc"):
        render(tmp_path, kustomize_bin, ks_spec("app"))
    (tmp_path / "repo" / "app" / "svc.yaml").unlink()
    objects = by_ref(render(tmp_path, kustomize_bin, ks_spec("app")))
    # Cluster-scoped kinds and CRD kinds of unknown scope are left as rendered.
    assert set(objects) == {
        ObjectRef("", "Namespace", "", "n"),
        ObjectRef("example.com", "Widget", "", "w"),
    }


def test_user_requested_origin_annotations_are_kept(tmp_path: Path, kustomize_bin: Path) -> None:
    write_tree(
        tmp_path / "repo",
        {
            "app/kustomization.yaml": (
                "namespace: x\nresources: [svc.yaml]\nbuildMetadata: [originAnnotations]\n"
            ),
            "app/svc.yaml": SERVICE,
        },
    )
    (service,) = render(tmp_path, kustomize_bin, ks_spec("app")).manifests
    assert (
        "path: svc.yaml" in service.body["metadata"]["annotations"]["config.kubernetes.io/origin"]
    )
    assert service.source == "app/svc.yaml"


def test_input_set_excludes_outside_files_and_includes_sibling_patches(
    tmp_path: Path, kustomize_bin: Path
) -> None:
    overlay_repo(tmp_path)
    first = render(tmp_path, kustomize_bin, ks_spec("apps/prod", targetNamespace="p")).inputs
    (tmp_path / "repo" / "apps" / "other" / "unrelated.yaml").write_text("changed: true\n")
    second = render(tmp_path, kustomize_bin, ks_spec("apps/prod", targetNamespace="p")).inputs
    assert first == second
    assert "apps/other/unrelated.yaml" not in first
    assert {"apps/base/deploy.yaml", "apps/base/svc.yaml"} <= first


SUBST = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings-${ENV}
  namespace: apps
data:
  plain: ${ENV}
  assign: ${UNSET:=fallback}
  dash: ${UNSET:-dashed}
  eq: ${UNSET=equal}
  substr: ${LONG:2:3}
  replace: ${LONG/a/X}
  replace_all: ${LONG//a/X}
  upper: ${ENV^^}
  lower: ${UPPER,,}
  length: "${#LONG}"
  escaped: $${ENV}
  bare: $ENV
  nested: ${UNSET:=${ENV}-x}
"""


def substitution_repo(root: Path) -> None:
    write_tree(
        root / "repo",
        {
            "app/kustomization.yaml": "resources: [cm.yaml, off.yaml]\n",
            "app/cm.yaml": SUBST,
            "app/off.yaml": """
                apiVersion: v1
                kind: ConfigMap
                metadata:
                  name: off
                  namespace: apps
                  annotations: {kustomize.toolkit.fluxcd.io/substitute: disabled}
                data: {raw: "${ENV}"}
            """,
        },
    )


def test_substitution_syntaxes(tmp_path: Path, kustomize_bin: Path) -> None:
    substitution_repo(tmp_path)
    rendered = render(
        tmp_path,
        kustomize_bin,
        ks_spec("app"),
        variables={"ENV": "prod", "LONG": "banana", "UPPER": "LOUD"},
    )
    objects = by_ref(rendered)
    data = objects[ObjectRef("", "ConfigMap", "apps", "settings-prod")].body["data"]
    assert data == {
        "plain": "prod",
        "assign": "fallback",
        "dash": "dashed",
        "eq": "equal",
        "substr": "nan",
        "replace": "bXnana",
        "replace_all": "bXnXnX",
        "upper": "PROD",
        "lower": "loud",
        "length": 6,  # re-serialised unquoted, as in Flux: numbers need quoting
        "escaped": "${ENV}",
        "bare": "$ENV",
        "nested": "prod-x",
    }
    off = objects[ObjectRef("", "ConfigMap", "apps", "off")]
    assert off.body["data"] == {"raw": "${ENV}"}


def test_no_variables_means_no_substitution(tmp_path: Path, kustomize_bin: Path) -> None:
    substitution_repo(tmp_path)
    objects = by_ref(render(tmp_path, kustomize_bin, ks_spec("app"), variables=None))
    data = objects[ObjectRef("", "ConfigMap", "apps", "settings-${ENV}")].body["data"]
    assert data["escaped"] == "$${ENV}"


def test_empty_variables_still_substitute_strictly(tmp_path: Path, kustomize_bin: Path) -> None:
    """`substituteStrategy: Always` with nothing resolved: every `${var}` must have a default."""
    substitution_repo(tmp_path)
    with pytest.raises(InputError, match="variable not set"):
        render(tmp_path, kustomize_bin, ks_spec("app"), variables={})


def test_strict_mode_names_object_and_variable(tmp_path: Path, kustomize_bin: Path) -> None:
    substitution_repo(tmp_path)
    with pytest.raises(InputError) as caught:
        render(tmp_path, kustomize_bin, ks_spec("app"), variables={"ENV": "prod"})
    message = str(caught.value)
    assert "variable not set (strict mode)" in message
    assert "'LONG'" in message
    assert "ConfigMap/apps/settings-${ENV}" in message
    assert caught.value.file == "app/cm.yaml"


def test_substitution_producing_invalid_yaml(tmp_path: Path, kustomize_bin: Path) -> None:
    write_tree(
        tmp_path / "repo",
        {
            "app/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: a}\n"
            "data: {k: '${V}'}\n"
        },
    )
    with pytest.raises(InputError, match="not valid YAML after variable substitution"):
        render(tmp_path, kustomize_bin, ks_spec("app"), variables={"V": "a: [b"})


CANARY = "canary-7f3e9c1d-secret"


def test_secret_derived_values_never_appear(tmp_path: Path, kustomize_bin: Path) -> None:
    write_tree(
        tmp_path / "repo",
        {
            "app/deploy.yaml": DEPLOY.replace(
                "name: web\nspec:", "name: web\n  namespace: a\nspec:"
            ).replace("image: nginx:1.25", "image: nginx:1.25\n        args: ['--token=${TOKEN}']"),
            "app/cm.yaml": """
                apiVersion: v1
                kind: ConfigMap
                metadata: {name: c, namespace: a, labels: {part: "${TOKEN:0:6}"}}
                data:
                  url: https://user:${TOKEN}@example.com
                  upper: ${TOKEN^^}
                  public: ${PUBLIC}
            """,
            "app/secret.yaml": """
                apiVersion: v1
                kind: Secret
                metadata: {name: s, namespace: a}
                stringData: {token: "${TOKEN}"}
            """,
        },
    )
    masker = Masker(b"m" * 32)
    rendered = render(
        tmp_path,
        kustomize_bin,
        ks_spec("app"),
        variables={"TOKEN": CANARY, "PUBLIC": "visible"},
        secret_variables=frozenset({"TOKEN"}),
        masker=masker,
    )
    text = repr([m.body for m in rendered.manifests])
    assert CANARY not in text
    assert CANARY.upper() not in text
    objects = by_ref(rendered)
    data = objects[ObjectRef("", "ConfigMap", "a", "c")].body["data"]
    assert data["public"] == "visible"
    assert data["url"] == masker.token(f"https://user:{CANARY}@example.com".encode())
    assert is_token(data["upper"])
    secret = objects[ObjectRef("", "Secret", "a", "s")].body
    assert secret["data"] == {"token": masker.token(CANARY.encode())}
    # The same render in cleartext, for applying: the values are there, their places recorded,
    # and not even a repr of the cleartext object shows them.
    clear = {ObjectRef.of(obj.body): obj for obj in rendered.clear}
    configmap = clear[ObjectRef("", "ConfigMap", "a", "c")]
    assert configmap.body["data"]["url"] == f"https://user:{CANARY}@example.com"
    assert configmap.secret.values >= {("data", "url"), ("data", "upper")}
    assert ("data", "public") not in configmap.secret.values
    assert clear[ObjectRef("", "Secret", "a", "s")].body["stringData"] == {"token": CANARY}
    assert CANARY not in repr(rendered.clear)
    args = objects[ObjectRef("apps", "Deployment", "a", "web")].body["spec"]["template"]["spec"][
        "containers"
    ][0]["args"]
    assert is_token(args[0])


def test_secret_values_never_reach_errors(tmp_path: Path, kustomize_bin: Path) -> None:
    write_tree(
        tmp_path / "repo",
        {
            "app/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: a}\n"
            "data: {k: '${TOKEN}', j: '${MISSING}'}\n"
        },
    )
    bad = f"{CANARY}: [unclosed"
    for variables in ({"TOKEN": CANARY}, {"TOKEN": bad, "MISSING": "x"}):
        with pytest.raises(InputError) as caught:
            render(
                tmp_path,
                kustomize_bin,
                ks_spec("app"),
                variables=variables,
                secret_variables=frozenset({"TOKEN"}),
            )
        assert CANARY not in str(caught.value)
