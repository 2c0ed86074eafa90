"""HL7 v2 delimiters and escape sequences (HL7 v2.5.1 chapter 2.7).

A message declares its own delimiters in MSH-1 and MSH-2; text inside a field
writes those characters as escape sequences:

    \\F\\ field   \\S\\ component   \\T\\ subcomponent   \\R\\ repetition
    \\E\\ escape  \\Xhh..\\ bytes in hex   \\.br\\ line break

:func:`unescape` turns a field value into plain text and :func:`escape` does
the reverse, so ``unescape(escape(s, d), d) == s`` for any text. Sequences this
module does not know (character-set switches, other formatting commands) are
kept literally; the highlight markers ``\\H\\`` and ``\\N\\`` are dropped, as
they carry no text. Control characters (carriage return, MLLP's VT and FS, …)
are escaped as hex so an escaped value can never end a segment or a frame.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

__all__ = ["DEFAULT_DELIMITERS", "Delimiters", "escape", "unescape"]


class Delimiters(NamedTuple):
    """The five delimiter characters of a message (MSH-1 and MSH-2)."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"

    @property
    def encoding_characters(self) -> str:
        """MSH-2 as written: component, repetition, escape, subcomponent."""
        return self.component + self.repetition + self.escape + self.subcomponent


DEFAULT_DELIMITERS = Delimiters()

#: Formatting commands that carry no text; unescaping drops them.
_DROPPED = frozenset({"H", "N"})


@lru_cache(maxsize=16)
def _unescape_map(d: Delimiters) -> dict[str, str]:
    return {
        "F": d.field,
        "S": d.component,
        "T": d.subcomponent,
        "R": d.repetition,
        "E": d.escape,
        ".br": "\n",
    }


@lru_cache(maxsize=16)
def _escape_table(d: Delimiters) -> dict[int, str]:
    e = d.escape
    table: dict[int, str] = {
        code: f"{e}X{code:02X}{e}" for code in (*range(0x20), 0x7F) if code not in (0x09, 0x0A)
    }
    table[0x0A] = f"{e}.br{e}"
    table.update(
        {
            ord(d.escape): f"{e}E{e}",
            ord(d.field): f"{e}F{e}",
            ord(d.component): f"{e}S{e}",
            ord(d.subcomponent): f"{e}T{e}",
            ord(d.repetition): f"{e}R{e}",
        }
    )
    return table


def escape(text: str, delimiters: Delimiters = DEFAULT_DELIMITERS) -> str:
    """Write ``text`` so it can stand inside one subcomponent of a message."""
    return text.translate(_escape_table(delimiters))


def _hex_text(digits: str, charset: str) -> str | None:
    """Decode the hex digits of a ``\\Xhh..\\`` sequence, or None if they are not valid."""
    if not digits or len(digits) % 2:
        return None
    try:
        return bytes.fromhex(digits).decode(charset)
    except (ValueError, LookupError):
        return None


def unescape(
    value: str, delimiters: Delimiters = DEFAULT_DELIMITERS, *, charset: str = "utf-8"
) -> str:
    """Replace the escape sequences in ``value`` by the text they stand for.

    ``charset`` is the Python codec used for the bytes of ``\\Xhh..\\`` sequences
    (the message's MSH-18). An unknown or malformed sequence stays as written.
    """
    esc = delimiters.escape
    if esc not in value:
        return value
    known = _unescape_map(delimiters)
    out: list[str] = []
    pos = 0
    size = len(value)
    while pos < size:
        start = value.find(esc, pos)
        if start < 0:
            out.append(value[pos:])
            break
        end = value.find(esc, start + 1)
        if end < 0:
            out.append(value[pos:])
            break
        out.append(value[pos:start])
        body = value[start + 1 : end]
        replacement = known.get(body)
        if replacement is None and body[:1] in ("X", "x"):
            replacement = _hex_text(body[1:], charset)
        if replacement is not None:
            out.append(replacement)
        elif body not in _DROPPED:
            out.append(value[start : end + 1])
        pos = end + 1
    return "".join(out)
