"""Tests of planning: noise rules, object comparison and the change set of a merge."""
