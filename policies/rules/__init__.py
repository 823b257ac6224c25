"""Built-in GitOps rules, one module per rule, each exposing `RULE` (see `policies.registry`).

Modules without `RULE` are helpers the rules share (image references, workload shapes, the API
deprecation table, immutable fields, metadata readers, the tenants option).
"""
