"""HL7 escape sequences: tables of cases and a randomised round trip."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from producers.hl7v2.escape import DEFAULT_DELIMITERS, Delimiters, escape, unescape

E = "\\"  # the default escape character, to keep the tables readable

UNESCAPE_CASES = [
    ("plain", "plain"),
    (f"a{E}F{E}b", "a|b"),
    (f"a{E}S{E}b", "a^b"),
    (f"a{E}T{E}b", "a&b"),
    (f"a{E}R{E}b", "a~b"),
    (f"a{E}E{E}b", "a\\b"),
    (f"10{E}S{E}9/L", "10^9/L"),
    (f"line1{E}.br{E}line2", "line1\nline2"),
    (f"{E}X0D{E}", "\r"),
    (f"{E}XE5BCA0{E}", "张"),  # UTF-8 bytes
    (f"{E}x41{E}", "A"),
    (f"{E}H{E}important{E}N{E}", "important"),  # highlighting carries no text
    (f"{E}Q{E}", f"{E}Q{E}"),  # unknown: kept literally
    (f"{E}.sp{E}", f"{E}.sp{E}"),  # a formatting command not interpreted
    (f"{E}C2842{E}", f"{E}C2842{E}"),  # a character-set switch: kept
    (f"{E}XE5BC{E}", f"{E}XE5BC{E}"),  # an incomplete UTF-8 sequence
    (f"{E}X0{E}", f"{E}X0{E}"),  # odd number of hex digits
    (f"{E}XZZ{E}", f"{E}XZZ{E}"),
    (f"a{E}b", f"a{E}b"),  # a lone escape character
    (f"trailing{E}", f"trailing{E}"),
    (f"{E}{E}", f"{E}{E}"),  # an empty sequence
    (f"{E}Q{E}{E}F{E}", f"{E}Q{E}|"),  # sequences pair up left to right
]


@pytest.mark.parametrize(("raw", "text"), UNESCAPE_CASES)
def test_unescape(raw: str, text: str) -> None:
    assert unescape(raw) == text


def test_unescape_hex_in_the_message_charset() -> None:
    assert unescape(f"{E}XD5C5{E}", charset="gb18030") == "张"


ESCAPE_CASES = [
    ("a|b", f"a{E}F{E}b"),
    ("10^9/L", f"10{E}S{E}9/L"),
    ("R&D", f"R{E}T{E}D"),
    ("x~y", f"x{E}R{E}y"),
    ("C:\\dir", f"C:{E}E{E}dir"),
    ("two\nlines", f"two{E}.br{E}lines"),
    ("cr\rhere", f"cr{E}X0D{E}here"),
    ("\x0bframe\x1c", f"{E}X0B{E}frame{E}X1C{E}"),
    ("张三 tab\tkept", "张三 tab\tkept"),
]


@pytest.mark.parametrize(("text", "raw"), ESCAPE_CASES)
def test_escape(text: str, raw: str) -> None:
    assert escape(text) == raw


def test_escape_uses_the_message_delimiters() -> None:
    d = Delimiters("#", "!", "*", "$", "@")
    assert escape("a#b!c*d$e@f|^~\\&", d) == "a$F$b$S$c$R$d$E$e$T$f|^~\\&"
    assert unescape("a$F$b$S$c", d) == "a#b!c"


_ASCII_PUNCT = "!#$%&*+/:;=?@^_`|~\\"


@st.composite
def delimiters(draw: st.DrawFn) -> Delimiters:
    chars = draw(st.permutations(_ASCII_PUNCT))
    return Delimiters(*chars[:5])


@given(st.text())
def test_round_trip_default_delimiters(text: str) -> None:
    assert unescape(escape(text)) == text


@given(st.text(), delimiters())
def test_round_trip_any_delimiters(text: str, d: Delimiters) -> None:
    escaped = escape(text, d)
    assert d.field not in escaped.replace(f"{d.escape}F{d.escape}", "")
    assert "\r" not in escaped
    assert unescape(escaped, d) == text


@given(st.text())
def test_escaped_text_holds_no_delimiter_but_escape(text: str) -> None:
    escaped = escape(text)
    d = DEFAULT_DELIMITERS
    for char in (d.field, d.component, d.repetition, d.subcomponent, "\r", "\n", "\x0b", "\x1c"):
        assert char not in escaped
