"""The in-cluster reconciler that applies merged revisions with Flux's APIs."""
