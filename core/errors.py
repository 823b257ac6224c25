"""Tidegate's one exception hierarchy.

Every error a user can see is a `TidegateError` whose message names the file, the object and the
field involved, so the command line prints it as is and never shows a traceback. Adapters translate
third-party exceptions into these at the edge. Messages must never contain a Secret value.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

__all__ = [
    "BudgetError",
    "CommandError",
    "Failure",
    "GitError",
    "InputError",
    "RenderError",
    "TidegateError",
]

_MAX_OUTPUT = 4000


def _tail(text: str) -> str:
    """Keep the end of a tool's output, where the error usually is."""
    text = text.strip()
    return text if len(text) <= _MAX_OUTPUT else "…" + text[-_MAX_OUTPUT:]


class Failure(StrEnum):
    """Why a unit could not be rendered, as a type rather than as text.

    The preview prints it next to the message and the reconciler maps it onto Flux's condition
    reasons (`ArtifactFailed`, `BuildFailed`, `DependencyNotReady`, ...), so neither parses an
    error string to decide what kind of failure it was.
    """

    INPUT = "input"
    """The repository's content or a spec is invalid (a bad field, a name the API refuses)."""
    SOURCE = "source"
    """A source (git, a chart repository, an OCI artifact) could not be fetched or resolved."""
    BUILD = "build"
    """kustomize, helm or variable substitution failed on otherwise valid input."""
    DEPENDENCY = "dependency"
    """An object the unit needs (a substituteFrom ConfigMap, its source) never appeared."""
    BUDGET = "budget"
    """The unit went over one of the preview's budgets (time, units, depth, sizes)."""
    WITHHELD = "withheld"
    """Rendered, but withheld because something it rests on failed (its parent, the cluster)."""
    INTERNAL = "internal"
    """A defect in Tidegate: an unexpected exception, reported without its traceback."""


class TidegateError(Exception):
    """Base class: the message is complete and meant for the user."""

    failure: Failure = Failure.BUILD
    """What kind of unit failure this error stands for (see `Failure`); subclasses set their
    own, and code that rewords an error keeps the original's."""

    def reworded(self, message: str) -> TidegateError:
        """A plain error with a new message and this one's kind of failure."""
        error = TidegateError(message)
        error.failure = self.failure
        return error


class InputError(TidegateError):
    """Bad input in the repository or on the command line."""

    failure = Failure.INPUT

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        obj: str | None = None,
        field: str | None = None,
    ) -> None:
        self.file = file
        self.obj = obj
        self.field = field
        where = ", ".join(
            part
            for part in (
                f"file {file}" if file else "",
                f"object {obj}" if obj else "",
                f"field {field}" if field else "",
            )
            if part
        )
        super().__init__(f"{where}: {message}" if where else message)


class CommandError(TidegateError):
    """A subprocess failed, timed out or could not start."""

    def __init__(
        self, argv: Sequence[str], message: str, *, stderr: str = "", code: int | None = None
    ) -> None:
        self.argv = tuple(argv)
        self.code = code
        """The exit code, when the command ran to its end and failed."""
        self.stderr = _tail(stderr)
        tool = self.argv[0].rsplit("/", 1)[-1] if self.argv else "command"
        detail = f": {self.stderr}" if self.stderr else ""
        super().__init__(f"{tool} {message}{detail}")


class GitError(TidegateError):
    """A git operation failed (unknown revision, not a repository, ...)."""

    failure = Failure.SOURCE


class RenderError(TidegateError):
    """A unit could not be rendered; the message says which file and object."""


class BudgetError(TidegateError):
    """Input or work went over one of the preview's budgets (time, units, depth, sizes).

    The message names the budget and the `tidegate preview` flag that raises it, so a repository
    that legitimately needs more can get it without reading the code.
    """

    failure = Failure.BUDGET

    def __init__(self, message: str, *, flag: str) -> None:
        self.reason = message
        self.flag = flag
        super().__init__(f"{message}; raise it with `tidegate preview {flag}`")

    def at(self, where: str) -> BudgetError:
        """The same error, saying where it happened (a file, a tool's output)."""
        return BudgetError(f"{where}: {self.reason}", flag=self.flag)
