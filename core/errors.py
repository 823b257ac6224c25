"""Tidegate's one exception hierarchy.

Every error a user can see is a `TidegateError` whose message names the file, the object and the
field involved, so the command line prints it as is and never shows a traceback. Adapters translate
third-party exceptions into these at the edge. Messages must never contain a Secret value.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "BudgetError",
    "CommandError",
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


class TidegateError(Exception):
    """Base class: the message is complete and meant for the user."""


class InputError(TidegateError):
    """Bad input in the repository or on the command line."""

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


class RenderError(TidegateError):
    """A unit could not be rendered; the message says which file and object."""


class BudgetError(TidegateError):
    """Input or work went over one of the preview's budgets (time, units, depth, sizes).

    The message names the budget and the `tidegate preview` flag that raises it, so a repository
    that legitimately needs more can get it without reading the code.
    """

    def __init__(self, message: str, *, flag: str) -> None:
        self.reason = message
        self.flag = flag
        super().__init__(f"{message}; raise it with `tidegate preview {flag}`")

    def at(self, where: str) -> BudgetError:
        """The same error, saying where it happened (a file, a tool's output)."""
        return BudgetError(f"{where}: {self.reason}", flag=self.flag)
