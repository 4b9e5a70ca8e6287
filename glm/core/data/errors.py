"""Named errors of the data layer.

Every error names the object that was wrong: the file and line for file-level problems,
the field, what was expected and what was found.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Optional

from glm.errors import GlmError


class DataError(GlmError, ValueError):
    """Base class of glm data errors."""


class DataNotFoundError(DataError, FileNotFoundError):
    """A dataset's files are missing; the message lists every place that was searched."""

    def __init__(self, what: str, looked_in: Iterable[Path | str], hint: str = ""):
        self.what = what
        self.looked_in = [str(p) for p in looked_in]
        msg = f"{what} not found; looked in: {', '.join(self.looked_in) or 'nowhere'}"
        if hint:
            msg += f" ({hint})"
        super().__init__(msg)


class DataValidationError(DataError):
    """A record of an input file is invalid.

    Attributes:
        file: the file (path as given), ``None`` for in-memory data.
        line: 1-based line number, ``None`` when not line-based.
        field: the field (column) that is wrong.
        expected / found: short descriptions.
    """

    def __init__(self, file: Optional[Path | str], line: Optional[int], field: str, expected: Any, found: Any):
        self.file, self.line, self.field, self.expected, self.found = file, line, field, expected, found
        where = str(file) if file is not None else "config"
        if line is not None:
            where += f":{line}"
        super().__init__(f"{where}: field {field!r}: expected {expected}, found {found}")


class DuplicateNodeIdError(DataValidationError):
    pass


class UnknownNodeError(DataValidationError):
    """An edge refers to a node id that is not in the nodes file."""


class EmptyTextError(DataValidationError):
    pass


class UnknownLabelError(DataValidationError):
    """A label is not one of the declared class names."""


class MalformedRecordError(DataValidationError):
    """A row or JSON line cannot be parsed or lacks a required column."""


class ContextOverflowError(DataError):
    """The graph tokens plus the prompt do not fit into the LLM context (graph tokens are never cut)."""


class SplitMismatchError(DataError):
    """A few-shot split manifest was made for another dataset or another version of it."""


class InsufficientNodesError(DataError):
    """A class has too few labelled nodes for the requested split."""
