"""The one exception type users see: a file and a reason, printed on one line."""
from __future__ import annotations

from os import PathLike


class HyperispError(Exception):
    """An error the user can act on: which file, and why.

    The CLI prints ``str(err)`` on one line and exits non-zero; no traceback.
    """

    def __init__(self, path: str | PathLike | None, reason: str) -> None:
        self.path = None if path is None else str(path)
        self.reason = reason
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}" if self.path else self.reason
