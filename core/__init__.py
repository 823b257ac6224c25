"""Tidegate's shared engine: repository model, rendering, planning and adapters.

Both deployables (the pull-request app and the in-cluster reconciler) call these functions, so a
preview is exactly the reconciler's plan. Nothing here imports another Tidegate package.
"""
