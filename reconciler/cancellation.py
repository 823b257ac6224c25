"""`CancelledError`: a reconcile given up because the process is stopping.

Flux's controllers run each reconcile under a context that shutdown cancels; a health wait then
ends at once and the run writes no outcome, so the object keeps the progress status it had
(Ready Unknown, Reconciling) and the next process reconciles it again. A wait that sees its stop
event set raises `CancelledError`; the loop logs it and does not count it as a failure or retry it.
This module is only the signal's type: it waits for nothing and reads no object.
"""

from __future__ import annotations

__all__ = ["CancelledError"]


class CancelledError(Exception):
    """The run was cancelled by shutdown; its outcome is neither success nor failure."""
