"""Tests of rendering against the real kustomize and helm binaries."""
