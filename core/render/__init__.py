"""Turning Flux units into Kubernetes objects: kustomize, helm, substitution, the render cache."""
