"""User-facing errors.

An :class:`EdgekdError` is a mistake the user can fix (a recipe key, a data file, a
missing tool). The CLI prints it as one clear message and exits non-zero, without a
traceback. Anything else is a bug in edgekd and keeps its traceback.
"""
from __future__ import annotations


class EdgekdError(Exception):
    """A user error: says *what* is wrong, *where*, and *what to do*."""

    exit_code = 2

    def __init__(self, what: str, *, where: str | None = None, fix: str | None = None):
        self.what = what
        self.where = where
        self.fix = fix
        super().__init__(self.message)

    @property
    def message(self) -> str:
        parts = []
        if self.where:
            parts.append(f"{self.where}: {self.what}")
        else:
            parts.append(self.what)
        if self.fix:
            parts.append(f"  -> {self.fix}")
        return "\n".join(parts)


class ConfigError(EdgekdError):
    """The recipe is malformed or inconsistent."""


class DataError(EdgekdError):
    """A dataset file is missing, unreadable or inconsistent."""


class ToolMissingError(EdgekdError):
    """An optional dependency or external tool is not installed."""


class FidelityError(EdgekdError):
    """An exported artifact does not compute what its source model computes."""

    exit_code = 3


class TrainingError(EdgekdError):
    """Training diverged (NaN/Inf loss) or could not continue."""
