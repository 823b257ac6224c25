"""Generate a synthetic Flux fleet as a real git repository, with three change branches.

The fleet is three clusters (`staging`, `production`, `edge`) of 150 apps each, laid out the way
Flux users lay out repositories: a bootstrap `flux-system` per cluster, `infrastructure` and `apps`
Flux Kustomizations, one Flux Kustomization per app and cluster pointing at a kustomize overlay
over a shared base, a few shared components, post-build variables from a `cluster-vars` ConfigMap,
and a few HelmReleases whose chart comes from a HelmRepository on 127.0.0.1. To measure how a
preview grows with the fleet, `--clusters N` adds edge sites `edge-004` ... up to N clusters (each
like `edge`, with its own tags and domain); the first three clusters and every change stay exactly
as in the three-cluster fleet, so a change touches the same units whatever N is.

Everything is derived from one fixed seed, and commits carry fixed authors and dates, so the same
arguments give the same files and the same commit ids. Run it on its own with
`python -m bench.fleet --out DIR`; `bench.preview_bench` calls `generate` directly.

Output layout: `DIR/fleet` (the git repository) and `DIR/charts` (a packaged chart and its
`index.yaml`, to be served over HTTP at the chart URL baked into the HelmRepository).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "BASE_BRANCH",
    "CLUSTERS",
    "Change",
    "Fleet",
    "cluster_names",
    "generate",
    "pinned_tool",
]

SEED = 20240611
CLUSTERS = ("staging", "production", "edge")
APPS_PER_CLUSTER = 150
TEAMS = tuple(f"team-{i:02d}" for i in range(10))
BASE_BRANCH = "main"
DEFAULT_CHART_URL = "http://127.0.0.1:8879"
CHART_NAME = "fleet-service"
CHART_VERSION = "0.1.0"

# Apps that others depend on; they are never renamed so every dependsOn stays valid.
_CORE_APPS = 5
# Every app base includes the shared `standard` component except these (1 in 50).
_STANDARD_OPT_OUT = 50

_WORDS_A = (
    "billing", "search", "catalog", "checkout", "identity", "ledger", "media", "notify",
    "orders", "pricing", "profile", "quota", "ranking", "report", "session", "shipping",
    "storage", "tenant", "upload", "vault",
)  # fmt: skip
_WORDS_B = ("api", "worker", "indexer", "gateway", "sync", "cron", "web", "store")

_REPLICAS = {"staging": 1, "production": 3, "edge": 2}
_CLUSTER_VARS = {
    "staging": {
        "cluster_name": "staging",
        "cluster_domain": "staging.fleet.example",
        "tier": "dev",
    },
    "production": {
        "cluster_name": "production",
        "cluster_domain": "fleet.example",
        "tier": "prod",
    },
    "edge": {"cluster_name": "edge", "cluster_domain": "edge.fleet.example", "tier": "edge"},
}
_RELEASES = ("edge-proxy", "metrics-agent", "session-cache")

# Fixed identity and clock for commits, so commit ids are reproducible.
_GIT_ENV = {
    "GIT_AUTHOR_NAME": "Fleet Generator",
    "GIT_AUTHOR_EMAIL": "fleet@bench.tidegate.dev",
    "GIT_COMMITTER_NAME": "Fleet Generator",
    "GIT_COMMITTER_EMAIL": "fleet@bench.tidegate.dev",
    "GIT_AUTHOR_DATE": "2024-06-11T12:00:00+00:00",
    "GIT_COMMITTER_DATE": "2024-06-11T12:00:00+00:00",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
}


@dataclass(frozen=True)
class App:
    """One application: its base is shared by every cluster, each cluster has an overlay."""

    index: int
    name: str
    team: str
    hpa: bool
    ingress: bool
    standard: bool
    depends_on: str | None
    tags: dict[str, str]

    @property
    def objects_per_cluster(self) -> int:
        """Rendered objects of one cluster's unit (base, optional HPA/Ingress, generated env)."""
        return 8 + self.hpa + self.ingress + 1


@dataclass(frozen=True)
class Change:
    """One change branch and the kustomize directories whose render it changes (both sides)."""

    name: str
    branch: str
    description: str
    base_units: tuple[str, ...]
    """Kustomize roots (repo-relative) whose render differs, at the base revision."""
    head_units: tuple[str, ...]
    """The same at the head revision (after a rename these are the new paths)."""


@dataclass
class Fleet:
    """What `generate` made."""

    repo: Path
    charts: Path
    chart_url: str
    apps: list[App]
    clusters: tuple[str, ...] = CLUSTERS
    base_sha: str = ""
    changes: list[Change] = field(default_factory=list)
    change_shas: dict[str, str] = field(default_factory=dict)

    @property
    def expected_objects(self) -> int:
        """Objects rendered at the base revision across all clusters and units."""
        per_cluster = sum(app.objects_per_cluster for app in self.apps)
        per_cluster += len(self.apps)  # the per-app Flux Kustomizations the `apps` unit renders
        per_cluster += 5  # flux-system unit: GitRepository, 3 Kustomizations, cluster-vars
        per_cluster += 1 + len(TEAMS) + 1 + len(_RELEASES)  # infrastructure unit
        per_cluster += 4 * len(_RELEASES)  # each release renders 4 objects
        return per_cluster * len(self.clusters)


def cluster_names(count: int) -> tuple[str, ...]:
    """The first `count` clusters: the three named ones, then edge sites `edge-004`, ..."""
    if count < len(CLUSTERS):
        raise SystemExit(f"--clusters must be at least {len(CLUSTERS)}, the changes need them")
    return CLUSTERS + tuple(f"edge-{index:03d}" for index in range(len(CLUSTERS) + 1, count + 1))


def _replicas(cluster: str) -> int:
    return _REPLICAS.get(cluster, _REPLICAS["edge"])


def _cluster_vars(cluster: str) -> dict[str, str]:
    known = _CLUSTER_VARS.get(cluster)
    if known is not None:
        return known
    return {"cluster_name": cluster, "cluster_domain": f"{cluster}.fleet.example", "tier": "edge"}


def _tag(app: App, cluster: str, seed: int) -> str:
    """An app's image tag in a cluster; edge sites draw theirs from their own seeded generator,
    so adding sites never shifts what the three named clusters draw."""
    known = app.tags.get(cluster)
    if known is not None:
        return known
    rng = random.Random(f"{seed}/{cluster}/{app.index}")
    return f"1.{rng.randrange(20)}.{rng.randrange(10)}"


# ---------------------------------------------------------------------------------------------
# Tools and git


def pinned_tool(name: str) -> Path:
    """Return the pinned kustomize or helm binary, as `tidegate dev tools path NAME` prints it."""
    tidegate = Path(sys.executable).parent / "tidegate"
    done = subprocess.run(
        [str(tidegate), "dev", "tools", "path", name],
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    if done.returncode == 0:
        return Path(done.stdout.strip().splitlines()[-1])
    # The command line imports the whole engine; while that is mid-change the toolchain module
    # (which the command only wraps) still answers the same question.
    from devenv import toolchain

    return toolchain.binary(name)


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, **_GIT_ENV}
    done = subprocess.run(
        ["git", "-c", "commit.gpgsign=false", "-c", "core.hooksPath=/dev/null", *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return done.stdout.strip()


def _commit(repo: Path, message: str) -> str:
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", message)
    return _git(repo, "rev-parse", "HEAD")


# ---------------------------------------------------------------------------------------------
# The model


def _make_apps(seed: int, count: int) -> list[App]:
    """Draw app names and features from a seeded generator (no randomness beyond the seed)."""
    rng = random.Random(seed)
    names = [f"{a}-{b}" for a in _WORDS_A for b in _WORDS_B]
    rng.shuffle(names)
    apps = []
    for index in range(count):
        # More apps than word pairs would repeat names; the index keeps every name unique.
        name = f"{names[index % len(names)]}-{index:03d}"
        depends = None if index < _CORE_APPS or rng.random() < 0.7 else f"core-{index % _CORE_APPS}"
        apps.append(
            App(
                index=index,
                name=f"core-{index}" if index < _CORE_APPS else name,
                team=TEAMS[index % len(TEAMS)],
                hpa=index % 3 != 0,
                ingress=index % 2 == 0,
                standard=index % _STANDARD_OPT_OUT != _STANDARD_OPT_OUT - 1,
                depends_on=depends,
                tags={c: f"1.{rng.randrange(20)}.{rng.randrange(10)}" for c in CLUSTERS},
            )
        )
    return apps


# ---------------------------------------------------------------------------------------------
# Writing files


def _dump(path: Path, *docs: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False, explicit_start=len(docs) > 1))


def _kustomization(**fields: Any) -> dict[str, Any]:
    return {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", **fields}


def _meta(name: str, namespace: str | None = None, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {**meta, **extra}


def _flux_ks(name: str, path: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": _meta(name, "flux-system"),
        "spec": {
            "interval": "10m",
            "path": path,
            "prune": True,
            "sourceRef": {"kind": "GitRepository", "name": "flux-system"},
            **spec,
        },
    }


def _write_cluster(root: Path, cluster: str, apps: list[App]) -> None:
    base = root / "clusters" / cluster
    _dump(
        base / "flux-system" / "gotk-sync.yaml",
        {
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "GitRepository",
            "metadata": _meta("flux-system", "flux-system"),
            "spec": {
                "interval": "1m",
                "ref": {"branch": BASE_BRANCH},
                "url": "ssh://git@git.fleet.example/platform/fleet",
            },
        },
        _flux_ks("flux-system", f"./clusters/{cluster}"),
    )
    _dump(base / "flux-system" / "kustomization.yaml", _kustomization(resources=["gotk-sync.yaml"]))
    _dump(
        base / "cluster-vars.yaml",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _meta("cluster-vars", "flux-system"),
            "data": _cluster_vars(cluster),
        },
    )
    substitute = {"substituteFrom": [{"kind": "ConfigMap", "name": "cluster-vars"}]}
    _dump(
        base / "infrastructure.yaml",
        _flux_ks("infrastructure", f"./infrastructure/{cluster}", postBuild=substitute),
    )
    _dump(
        base / "apps.yaml",
        _flux_ks("apps", f"./clusters/{cluster}/apps", dependsOn=[{"name": "infrastructure"}]),
    )
    # An explicit kustomization keeps `apps/` out of the flux-system unit: `apps` owns it.
    _dump(
        base / "kustomization.yaml",
        _kustomization(
            resources=["flux-system", "cluster-vars.yaml", "infrastructure.yaml", "apps.yaml"]
        ),
    )
    for app in apps:
        _write_app_ks(root, cluster, app, app.name)
    _write_apps_index(root, cluster, [app.name for app in apps])


def _write_app_ks(root: Path, cluster: str, app: App, unit: str) -> None:
    spec: dict[str, Any] = {
        "postBuild": {
            "substitute": {"app_name": app.name, "team": app.team},
            "substituteFrom": [{"kind": "ConfigMap", "name": "cluster-vars"}],
        }
    }
    if app.depends_on:
        spec["dependsOn"] = [{"name": app.depends_on}]
    _dump(
        root / "clusters" / cluster / "apps" / f"{unit}.yaml",
        _flux_ks(unit, f"./apps/{cluster}/{unit}", **spec),
    )


def _write_apps_index(root: Path, cluster: str, units: Iterable[str]) -> None:
    resources = [f"{unit}.yaml" for unit in sorted(units)]
    _dump(
        root / "clusters" / cluster / "apps" / "kustomization.yaml",
        _kustomization(resources=resources),
    )


def _write_infrastructure(root: Path, cluster: str, chart_url: str) -> None:
    base = root / "infrastructure" / cluster
    namespaces = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(ns, labels={"tier": "${tier}"})}
        for ns in ("platform", *TEAMS)
    ]
    _dump(base / "namespaces.yaml", *namespaces)
    _dump(
        base / "helm-repository.yaml",
        {
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "HelmRepository",
            "metadata": _meta("fleet-charts", "flux-system"),
            "spec": {"interval": "1h", "url": chart_url},
        },
    )
    releases = [_helm_release(name, position) for position, name in enumerate(_RELEASES)]
    _dump(base / "releases.yaml", *releases)
    _dump(
        base / "kustomization.yaml",
        _kustomization(resources=["namespaces.yaml", "helm-repository.yaml", "releases.yaml"]),
    )


def _helm_release(name: str, position: int) -> dict[str, Any]:
    return {
        "apiVersion": "helm.toolkit.fluxcd.io/v2",
        "kind": "HelmRelease",
        "metadata": _meta(name, "platform"),
        "spec": {
            "interval": "30m",
            "chart": {
                "spec": {
                    "chart": CHART_NAME,
                    "version": CHART_VERSION,
                    "sourceRef": {
                        "kind": "HelmRepository",
                        "name": "fleet-charts",
                        "namespace": "flux-system",
                    },
                }
            },
            "values": {
                "replicaCount": position + 1,
                "image": {"repository": f"registry.fleet.example/platform/{name}", "tag": "2.3.0"},
                "cluster": "${cluster_name}",
            },
        },
    }


def _write_components(root: Path) -> None:
    # Shared by ~every app base: the "base change" edits this component.
    standard = root / "components" / "standard"
    _dump(
        standard / "kustomization.yaml",
        {
            "apiVersion": "kustomize.config.k8s.io/v1alpha1",
            "kind": "Component",
            "labels": [{"pairs": {"fleet.example/managed-by": "platform"}}],
            "patches": [
                {"path": "security.yaml", "target": {"kind": "Deployment"}},
            ],
        },
    )
    _dump(standard / "security.yaml", _security_patch("v1"))
    # Used by a third of the overlays: scrape annotations on the pod template.
    monitoring = root / "components" / "monitoring"
    _dump(
        monitoring / "kustomization.yaml",
        {
            "apiVersion": "kustomize.config.k8s.io/v1alpha1",
            "kind": "Component",
            "patches": [{"path": "scrape.yaml", "target": {"kind": "Deployment"}}],
        },
    )
    _dump(
        monitoring / "scrape.yaml",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "any"},
            "spec": {
                "template": {
                    "metadata": {
                        "annotations": {
                            "prometheus.io/scrape": "true",
                            "prometheus.io/port": "9090",
                        }
                    }
                }
            },
        },
    )


def _security_patch(policy: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "any"},
        "spec": {
            "template": {
                "metadata": {"annotations": {"fleet.example/security-policy": policy}},
                "spec": {
                    "securityContext": {
                        "runAsNonRoot": True,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                },
            }
        },
    }


def _write_base(root: Path, app: App) -> None:
    base = root / "apps" / "base" / app.name
    labels = {"app.kubernetes.io/name": app.name}
    _dump(base / "deployment.yaml", _deployment(app))
    _dump(
        base / "service.yaml",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(app.name),
            "spec": {
                "selector": labels,
                "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
            },
        },
    )
    _dump(
        base / "serviceaccount.yaml",
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(app.name)},
    )
    _dump(
        base / "configmap.yaml",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _meta(f"{app.name}-config"),
            "data": {
                "app.yaml": f"name: {app.name}\nteam: {app.team}\ncluster: ${{cluster_name}}\n"
            },
        },
    )
    _dump(base / "rbac.yaml", *_rbac(app))
    _dump(base / "policy.yaml", *_policies(app, labels))
    resources = ["deployment.yaml", "service.yaml", "serviceaccount.yaml", "configmap.yaml"]
    resources += ["rbac.yaml", "policy.yaml"]
    if app.hpa:
        _dump(base / "hpa.yaml", _hpa(app))
        resources.append("hpa.yaml")
    if app.ingress:
        _dump(base / "ingress.yaml", _ingress(app))
        resources.append("ingress.yaml")
    fields: dict[str, Any] = {
        "resources": resources,
        "labels": [{"pairs": labels, "includeSelectors": True}],
    }
    if app.standard:
        fields["components"] = ["../../../components/standard"]
    _dump(base / "kustomization.yaml", _kustomization(**fields))


def _deployment(app: App) -> dict[str, Any]:
    container = {
        "name": "app",
        "image": f"registry.fleet.example/apps/{app.name}:0.0.0",
        "ports": [{"name": "http", "containerPort": 8080}],
        "envFrom": [{"configMapRef": {"name": f"{app.name}-env"}}],
        "env": [
            {"name": "APP_NAME", "value": "${app_name}"},
            {"name": "CLUSTER", "value": "${cluster_name}"},
            {"name": "TEAM", "value": "${team}"},
        ],
        "volumeMounts": [{"name": "config", "mountPath": "/etc/app"}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(app.name),
        "spec": {
            "replicas": 1,
            "template": {
                "spec": {
                    "serviceAccountName": app.name,
                    "containers": [container],
                    "volumes": [{"name": "config", "configMap": {"name": f"{app.name}-config"}}],
                }
            },
        },
    }


def _rbac(app: App) -> list[dict[str, Any]]:
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _meta(app.name),
        "rules": [
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(app.name),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": app.name},
        "subjects": [{"kind": "ServiceAccount", "name": app.name}],
    }
    return [role, binding]


def _policies(app: App, labels: dict[str, str]) -> list[dict[str, Any]]:
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(app.name),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels}},
    }
    netpol = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(app.name),
        "spec": {
            "podSelector": {"matchLabels": labels},
            "ingress": [{"ports": [{"port": 8080}]}],
            "policyTypes": ["Ingress"],
        },
    }
    return [pdb, netpol]


def _hpa(app: App) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(app.name),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": app.name},
            "minReplicas": 1,
            "maxReplicas": 6,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 75},
                    },
                }
            ],
        },
    }


def _ingress(app: App) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": _meta(app.name, annotations={"fleet.example/cluster": "${cluster_name}"}),
        "spec": {
            "rules": [
                {
                    "host": "${app_name}.${cluster_domain}",
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {
                                    "service": {"name": app.name, "port": {"name": "http"}}
                                },
                            }
                        ]
                    },
                }
            ]
        },
    }


def _write_overlay(root: Path, cluster: str, app: App, unit: str, tag: str) -> None:
    overlay = root / "apps" / cluster / unit
    fields: dict[str, Any] = {
        "namespace": app.team,
        "resources": [f"../../base/{app.name}"],
        "images": [{"name": f"registry.fleet.example/apps/{app.name}", "newTag": tag}],
        "replicas": [{"name": app.name, "count": _replicas(cluster)}],
        "configMapGenerator": [
            {
                "name": f"{app.name}-env",
                "literals": [f"LOG_LEVEL={'debug' if cluster == 'staging' else 'info'}"],
            }
        ],
        "patches": [{"path": "resources.yaml"}],
    }
    if app.index % 3 == 1:
        fields["components"] = ["../../../components/monitoring"]
    _dump(overlay / "kustomization.yaml", _kustomization(**fields))
    scale = {"staging": 1, "production": 4}.get(cluster, 2)
    _dump(
        overlay / "resources.yaml",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _meta(app.name),
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "app",
                                "resources": {
                                    "requests": {
                                        "cpu": f"{50 * scale}m",
                                        "memory": f"{64 * scale}Mi",
                                    },
                                    "limits": {"memory": f"{128 * scale}Mi"},
                                },
                            }
                        ]
                    }
                }
            },
        },
    )


# ---------------------------------------------------------------------------------------------
# The chart


def _write_chart(directory: Path) -> None:
    """Write a small chart shaped like `helm create` output (4 objects per release)."""
    (directory / "templates").mkdir(parents=True, exist_ok=True)
    (directory / "Chart.yaml").write_text(
        f"apiVersion: v2\nname: {CHART_NAME}\ndescription: A small service chart for the fleet\n"
        f'type: application\nversion: {CHART_VERSION}\nappVersion: "2.3.0"\n'
    )
    (directory / "values.yaml").write_text(
        "replicaCount: 1\nimage:\n  repository: registry.fleet.example/platform/service\n"
        '  tag: ""\ncluster: unknown\nservice:\n  port: 80\n'
    )
    templates = directory / "templates"
    templates.joinpath("_helpers.tpl").write_text(_HELPERS)
    templates.joinpath("deployment.yaml").write_text(_CHART_DEPLOYMENT)
    templates.joinpath("service.yaml").write_text(_CHART_SERVICE)
    templates.joinpath("serviceaccount.yaml").write_text(_CHART_SA)
    templates.joinpath("configmap.yaml").write_text(_CHART_CONFIGMAP)


_HELPERS = """{{- define "svc.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- define "svc.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}
"""
_CHART_DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "svc.fullname" . }}
  labels: {{- include "svc.labels" . | nindent 4 }}
spec:
  replicas: {{ .Values.replicaCount }}
  selector:
    matchLabels:
      app.kubernetes.io/instance: {{ .Release.Name }}
  template:
    metadata:
      labels:
        app.kubernetes.io/instance: {{ .Release.Name }}
      annotations:
        checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
    spec:
      serviceAccountName: {{ include "svc.fullname" . }}
      containers:
        - name: {{ .Chart.Name }}
          image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default "latest" }}"
          ports:
            - name: http
              containerPort: 8080
"""
_CHART_SERVICE = """apiVersion: v1
kind: Service
metadata:
  name: {{ include "svc.fullname" . }}
  labels: {{- include "svc.labels" . | nindent 4 }}
spec:
  ports:
    - port: {{ .Values.service.port }}
      targetPort: http
      name: http
  selector:
    app.kubernetes.io/instance: {{ .Release.Name }}
"""
_CHART_SA = """apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "svc.fullname" . }}
  labels: {{- include "svc.labels" . | nindent 4 }}
"""
_CHART_CONFIGMAP = """apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "svc.fullname" . }}
  labels: {{- include "svc.labels" . | nindent 4 }}
data:
  cluster: {{ .Values.cluster | quote }}
"""


def _package_chart(charts: Path, helm: Path) -> None:
    source = charts.parent / "chart-src" / CHART_NAME
    shutil.rmtree(source.parent, ignore_errors=True)
    _write_chart(source)
    charts.mkdir(parents=True, exist_ok=True)
    for args in (["package", str(source), "-d", str(charts)], ["repo", "index", str(charts)]):
        subprocess.run(
            [str(helm), *args],
            check=True,
            capture_output=True,
            timeout=120,
            # Keep helm away from the user's repositories and plugins.
            env={
                **os.environ,
                "HELM_CONFIG_HOME": str(charts.parent / ".helm"),
                "HELM_CACHE_HOME": str(charts.parent / ".helm"),
            },
        )
    shutil.rmtree(source.parent)


# ---------------------------------------------------------------------------------------------
# Changes


def _app(fleet: Fleet, index: int) -> App:
    """The app a change edits: `index`, or the last app of a smaller fleet (never a core app)."""
    return fleet.apps[min(index, len(fleet.apps) - 1)]


def _change_image_tag(repo: Path, fleet: Fleet, branch: str) -> Change:
    app = _app(fleet, 7)
    overlay = f"apps/staging/{app.name}"
    _write_overlay(repo, "staging", app, app.name, "9.9.9")
    return Change(
        "one-file",
        branch,
        f"bump the image tag in one overlay ({overlay})",
        (overlay,),
        (overlay,),
    )


def _change_rename(repo: Path, fleet: Fleet, branch: str) -> Change:
    app = _app(fleet, 42)
    new = f"{app.name}-v2"
    cluster = "production"
    _git(repo, "mv", f"apps/{cluster}/{app.name}", f"apps/{cluster}/{new}")
    _git(
        repo,
        "mv",
        f"clusters/{cluster}/apps/{app.name}.yaml",
        f"clusters/{cluster}/apps/{new}.yaml",
    )
    _write_app_ks(repo, cluster, app, new)
    units = [new if a.name == app.name else a.name for a in fleet.apps]
    _write_apps_index(repo, cluster, units)
    index = f"clusters/{cluster}/apps"
    return Change(
        "rename",
        branch,
        f"rename apps/{cluster}/{app.name} and its Flux Kustomization to {new}",
        (f"apps/{cluster}/{app.name}", index),
        (f"apps/{cluster}/{new}", index),
    )


def _change_base(repo: Path, fleet: Fleet, branch: str) -> Change:
    _dump(repo / "components" / "standard" / "security.yaml", _security_patch("v2"))
    units = tuple(
        f"apps/{cluster}/{app.name}"
        for cluster in fleet.clusters
        for app in fleet.apps
        if app.standard
    )
    return Change(
        "base",
        branch,
        "edit the shared `standard` component included by ~every app base",
        units,
        units,
    )


ChangeMaker = Callable[[Path, Fleet, str], Change]
_CHANGES: tuple[tuple[str, ChangeMaker], ...] = (
    ("change/image-tag", _change_image_tag),
    ("change/rename", _change_rename),
    ("change/base", _change_base),
)


# ---------------------------------------------------------------------------------------------
# Entry points


def generate(
    out: Path,
    *,
    chart_url: str = DEFAULT_CHART_URL,
    helm: Path | None = None,
    seed: int = SEED,
    clusters: int = len(CLUSTERS),
    apps: int = APPS_PER_CLUSTER,
) -> Fleet:
    """Write the fleet repository and chart repository under `out` (which must not exist).

    `apps` below the default makes a smaller fleet of the same shape (tests); each change then
    picks the last app where the full fleet's app does not exist.
    """
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} exists and is not empty")
    if apps <= _CORE_APPS:
        raise SystemExit(f"a fleet needs more than {_CORE_APPS} apps per cluster")
    names = cluster_names(clusters)
    repo, charts = out / "fleet", out / "charts"
    repo.mkdir(parents=True)
    fleet = Fleet(repo, charts, chart_url, _make_apps(seed, apps), names)
    _package_chart(charts, helm or pinned_tool("helm"))
    _git(repo, "init", "-q", "-b", BASE_BRANCH)
    _write_base_state(repo, fleet, seed)
    fleet.base_sha = _commit(repo, f"Fleet: {len(names)} clusters x {APPS_PER_CLUSTER} apps")
    for branch, make in _CHANGES:
        fleet.changes.append(_make_on_branch(repo, fleet, branch, make))
    _git(repo, "checkout", "-q", BASE_BRANCH)
    _describe_to(out / _RECORD, fleet, seed, apps)
    return fleet


_RECORD = "fleet.json"


def _describe_to(path: Path, fleet: Fleet, seed: int, apps: int) -> None:
    """Record what `generate` made, so a later run can take the same fleet (`generated`)."""
    record = {
        "seed": seed,
        "apps": apps,
        "chartUrl": fleet.chart_url,
        "clusters": list(fleet.clusters),
        "base": fleet.base_sha,
        "changes": [
            {
                "name": change.name,
                "branch": change.branch,
                "description": change.description,
                "baseUnits": list(change.base_units),
                "headUnits": list(change.head_units),
                "sha": fleet.change_shas[change.name],
            }
            for change in fleet.changes
        ],
    }
    path.write_text(json.dumps(record, indent=2) + "\n")


def generated(out: Path, clusters: int) -> Fleet | None:
    """The fleet an earlier `generate` wrote under `out` with `clusters` clusters, or None.

    None when there is none, it has another number of clusters, or its repository no longer
    has the recorded commits on its branches.
    """
    try:
        record = json.loads((out / _RECORD).read_text())
    except (OSError, ValueError):
        return None
    if len(record["clusters"]) != clusters:
        return None
    repo = out / "fleet"
    fleet = Fleet(
        repo,
        out / "charts",
        record["chartUrl"],
        _make_apps(record["seed"], record["apps"]),
        tuple(record["clusters"]),
        record["base"],
    )
    wanted = {BASE_BRANCH: fleet.base_sha}
    for item in record["changes"]:
        change = Change(
            item["name"],
            item["branch"],
            item["description"],
            tuple(item["baseUnits"]),
            tuple(item["headUnits"]),
        )
        fleet.changes.append(change)
        fleet.change_shas[change.name] = item["sha"]
        wanted[change.branch] = item["sha"]
    for branch, sha in wanted.items():
        found = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--verify", "-q", f"refs/heads/{branch}"],
            capture_output=True,
            text=True,
            check=False,
        )
        if found.stdout.strip() != sha:
            return None
    return fleet


def _make_on_branch(repo: Path, fleet: Fleet, branch: str, make: ChangeMaker) -> Change:
    """Create a branch off the base, apply one change and commit it."""
    _git(repo, "checkout", "-q", "-b", branch, BASE_BRANCH)
    change = make(repo, fleet, branch)
    fleet.change_shas[change.name] = _commit(repo, change.description)
    return change


def _write_base_state(repo: Path, fleet: Fleet, seed: int) -> None:
    _write_components(repo)
    for app in fleet.apps:
        _write_base(repo, app)
    for cluster in fleet.clusters:
        _write_cluster(repo, cluster, fleet.apps)
        _write_infrastructure(repo, cluster, fleet.chart_url)
        for app in fleet.apps:
            _write_overlay(repo, cluster, app, app.name, _tag(app, cluster, seed))


def describe(fleet: Fleet) -> str:
    """A human summary of what was generated."""
    files = int(_git(fleet.repo, "ls-files", "--", ".").count("\n") + 1)
    lines = [
        f"repository: {fleet.repo}",
        f"charts:     {fleet.charts} (serve at {fleet.chart_url})",
        f"clusters:   {len(fleet.clusters)} ({', '.join(fleet.clusters[:3])}, ...)"
        if len(fleet.clusters) > len(CLUSTERS)
        else f"clusters:   {', '.join(f'clusters/{c}' for c in fleet.clusters)}",
        f"apps:       {len(fleet.apps)} per cluster, {files} files",
        f"objects:    ~{fleet.expected_objects} rendered at {BASE_BRANCH}",
        f"base:       {BASE_BRANCH} {fleet.base_sha[:12]}",
    ]
    for change in fleet.changes:
        lines.append(
            f"change:     {change.branch} {fleet.change_shas[change.name][:12]} "
            f"({change.description}; {len(change.head_units)} kustomize roots re-rendered)"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.fleet --out DIR`."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.fleet", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="directory to create (must be empty)"
    )
    parser.add_argument(
        "--chart-url", default=DEFAULT_CHART_URL, help="URL the HelmRepository names"
    )
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument(
        "--clusters",
        type=int,
        default=len(CLUSTERS),
        help=f"number of clusters, at least {len(CLUSTERS)} (default: {len(CLUSTERS)})",
    )
    args = parser.parse_args(argv)
    fleet = generate(args.out, chart_url=args.chart_url, seed=args.seed, clusters=args.clusters)
    print(describe(fleet))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
