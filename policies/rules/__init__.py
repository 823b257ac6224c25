"""Tidegate's built-in GitOps rules: one module per rule, and the helpers they share."""
