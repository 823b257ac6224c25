"""Flux sources Tidegate reads from outside the repository, fetched through `core.fetch`."""
