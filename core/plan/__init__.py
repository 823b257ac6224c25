"""Comparing two renders of a cluster into a change set: normalize, compare, plan."""
