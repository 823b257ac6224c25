"""Tests of the local git server."""
