"""Flux-style repositories for the acceptance tests, as `flux bootstrap` users lay them out.

`production(flux)` is clusters/production -> infrastructure -> apps (apps dependsOn
infrastructure, waits for its objects, substitutes variables from a ConfigMap infrastructure
applies) plus `extras` with `prune: false`. Names are the test's own namespaces.
"""

from __future__ import annotations

from typing import Any


def production(flux: Any) -> dict[str, str]:
    ns, apps = flux.namespace, flux.apps_namespace
    return {
        "clusters/production/infrastructure.yaml": f"""
            apiVersion: kustomize.toolkit.fluxcd.io/v1
            kind: Kustomization
            metadata: {{name: infrastructure, namespace: {ns}}}
            spec:
              interval: 10m
              path: ./infrastructure
              prune: true
              sourceRef: {{kind: GitRepository, name: flux-system}}
        """,
        "clusters/production/apps.yaml": f"""
            apiVersion: kustomize.toolkit.fluxcd.io/v1
            kind: Kustomization
            metadata: {{name: apps, namespace: {ns}}}
            spec:
              interval: 10m
              retryInterval: 1m
              timeout: 2m
              dependsOn: [{{name: infrastructure}}]
              path: ./apps
              prune: true
              wait: true
              sourceRef: {{kind: GitRepository, name: flux-system}}
              postBuild:
                substituteFrom: [{{kind: ConfigMap, name: cluster-vars}}]
        """,
        "clusters/production/extras.yaml": f"""
            apiVersion: kustomize.toolkit.fluxcd.io/v1
            kind: Kustomization
            metadata: {{name: extras, namespace: {ns}}}
            spec:
              interval: 10m
              dependsOn: [{{name: infrastructure}}]
              path: ./extras
              prune: false
              sourceRef: {{kind: GitRepository, name: flux-system}}
        """,
        "infrastructure/namespace.yaml": f"""
            apiVersion: v1
            kind: Namespace
            metadata: {{name: {apps}}}
        """,
        "infrastructure/cluster-vars.yaml": f"""
            apiVersion: v1
            kind: ConfigMap
            metadata: {{name: cluster-vars, namespace: {ns}}}
            data: {{greeting: hello, tier: production}}
        """,
        "apps/kustomization.yaml": """
            apiVersion: kustomize.config.k8s.io/v1beta1
            kind: Kustomization
            resources: [deployment.yaml, service.yaml, settings.yaml, keep.yaml]
        """,
        "apps/deployment.yaml": f"""
            apiVersion: apps/v1
            kind: Deployment
            metadata: {{name: web, namespace: {apps}}}
            spec:
              replicas: 1
              selector: {{matchLabels: {{app: web}}}}
              template:
                metadata: {{labels: {{app: web}}}}
                spec:
                  containers: [{{name: web, image: registry.invalid/web:1}}]
        """,
        "apps/service.yaml": f"""
            apiVersion: v1
            kind: Service
            metadata: {{name: web, namespace: {apps}}}
            spec:
              selector: {{app: web}}
              ports: [{{port: 80}}]
        """,
        "apps/settings.yaml": f"""
            apiVersion: v1
            kind: ConfigMap
            metadata: {{name: settings, namespace: {apps}}}
            data: {{greeting: "${{greeting}}", tier: "${{tier}}"}}
        """,
        "apps/keep.yaml": f"""
            apiVersion: v1
            kind: ConfigMap
            metadata:
              name: keep
              namespace: {apps}
              annotations: {{kustomize.toolkit.fluxcd.io/prune: disabled}}
            data: {{kept: "yes"}}
        """,
        "extras/one.yaml": f"""
            apiVersion: v1
            kind: ConfigMap
            metadata: {{name: extra-one, namespace: {apps}}}
        """,
        "extras/two.yaml": f"""
            apiVersion: v1
            kind: ConfigMap
            metadata: {{name: extra-two, namespace: {apps}}}
        """,
    }
