"""Turning Flux units into Kubernetes objects: the command runner, kustomize, helm, substitution."""
