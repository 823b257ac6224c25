"""Built-in GitOps rules, one module per rule, each exposing `RULE` (see `policies.registry`)."""
