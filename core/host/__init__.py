"""The bottom layer: everything that touches the host (subprocesses, files on disk, paths).

Nothing here knows about Flux, kustomize or git; the layers above build on these seams.
"""
