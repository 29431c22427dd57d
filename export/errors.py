"""The one exception type of the exporter (no heavy imports, so the CLI can catch it cheaply)."""

from __future__ import annotations


class ExportError(ValueError):
    """A checkpoint, option or output path the exporter cannot use.

    The message is one line: what is wrong, then what to do about it.
    """


def one_line(exc: BaseException, limit: int = 200) -> str:
    """First line of an exception's message, trimmed, for embedding in an ExportError."""
    text = str(exc).strip().splitlines()
    first = text[0].strip() if text else type(exc).__name__
    return first if len(first) <= limit else first[: limit - 3] + "..."
