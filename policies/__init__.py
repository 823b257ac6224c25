"""Rules over a change set: built-in GitOps rules and user rules in CEL."""
