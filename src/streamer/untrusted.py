"""Showing text that the platform under test chose: RTMP status codes, EXT-X-ERROR text,
API messages, HTTP reason phrases.

Such text ends up in logs (a terminal, a log pipeline that splits on newlines), events and
the status page. `quote_untrusted` makes it one bounded, inert line: control characters
(newlines, ANSI escape sequences, bidi overrides) become visible escapes, and long text is
clipped.
"""

from __future__ import annotations

import unicodedata

ELLIPSIS = "…"
# Control, format (bidi overrides, zero-width), line and paragraph separator characters.
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def _escape(char: str) -> str:
    if unicodedata.category(char) not in _ESCAPED_CATEGORIES:
        return char
    code = ord(char)
    if char in "\n\r\t":
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}[char]
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """`text` with every control character shown as an escape (`\\n`, `\\x1b`, `\\u202e`)."""
    if text.isprintable():  # the common case, fast
        return text
    return "".join(_escape(c) for c in text)


def quote_untrusted(text: object, limit: int = 200) -> str:
    """One line of at most `limit` characters (plus an ellipsis when clipped), escaped."""
    parts: list[str] = []
    size = 0
    for char in str(text)[: limit + 1]:
        shown = _escape(char)
        if size + len(shown) > limit:
            parts.append(ELLIPSIS)
            break
        parts.append(shown)
        size += len(shown)
    return "".join(parts)
