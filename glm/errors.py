"""The base class of every error a user can cause (bad config, data, checkpoint, adapter, plugin name...).

``glm`` prints a :class:`GlmError` as one line (``glm: error: ...``) and exits with code 2; ``-v``
adds the traceback. Each subclass also derives from the built-in error it refines (``ValueError``,
``LookupError``, ...), so ``except ValueError`` keeps working for library users.
"""

from __future__ import annotations


class GlmError(Exception):
    """A user-facing error: the message names the file / field / value and what was expected."""

    def one_line(self) -> str:
        """The message on one line (multi-line details joined with ``; ``)."""
        text = self.args[0] if len(self.args) == 1 and isinstance(self.args[0], str) else str(self)
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if not lines:
            return type(self).__name__
        head, rest = lines[0], lines[1:]
        return head + (" " + "; ".join(rest) if rest else "")
