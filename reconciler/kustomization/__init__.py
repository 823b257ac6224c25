"""The steps of one Flux Kustomization reconcile, one module per step.

`reconciler.pipeline` runs them in Flux's order; each step either returns what the next one needs
or raises `StepFailed` with Flux's condition reason and a message that is safe to show (no Secret
value). The steps read the cluster only through the seams in `deps`; none of them writes status,
loops or sleeps.
"""
