"""Character sets of HL7 v2 messages: MSH-18 to a Python codec, bytes to text.

Chinese hospitals send UTF-8 or GB18030 (often labelled GBK or GB2312). MSH-18
holds an HL7 table 0211 name; when it is empty, strict UTF-8 is tried first and
GB18030 is the fallback. The MSH segment itself is read before the charset is
known, so it is decoded on its own (its fields other than MSH-18 may hold
Chinese facility names, whose GBK trail bytes can equal ``|`` or ``^``).
"""

from __future__ import annotations

from hutong.errors import HL7Error

__all__ = ["codec_for", "decode_message", "detect_charset"]

#: HL7 table 0211 names (normalised: upper case, no spaces, ``-`` or ``_``) to codecs.
#: GB2312 and GBK are decoded as GB18030, a strict superset: senders that label
#: their text GB2312 routinely send GBK characters.
_CODECS: dict[str, str] = {
    "ASCII": "ascii",
    "ISOIR6": "ascii",
    "UNICODEUTF8": "utf-8",
    "UTF8": "utf-8",
    "ISOIR192": "utf-8",
    "GB180302000": "gb18030",
    "GB180302005": "gb18030",
    "GB180302022": "gb18030",
    "GB18030": "gb18030",
    "GBK": "gb18030",
    "GB2312": "gb18030",
    "ISOIR58": "gb18030",
    "BIG5": "big5",
    "8859/1": "iso-8859-1",
    "ISOIR100": "iso-8859-1",
    "8859/2": "iso-8859-2",
    "8859/3": "iso-8859-3",
    "8859/4": "iso-8859-4",
    "8859/5": "iso-8859-5",
    "8859/6": "iso-8859-6",
    "8859/7": "iso-8859-7",
    "8859/8": "iso-8859-8",
    "8859/9": "iso-8859-9",
    "8859/15": "iso-8859-15",
}

_UTF8_BOM = b"\xef\xbb\xbf"


def codec_for(name: str) -> str:
    """The Python codec for an MSH-18 value; empty means UTF-8.

    Raises HL7Error (table 0357 code 103, "table value not found") for a name
    that is not in HL7 table 0211 or that hutong cannot decode.
    """
    key = name.strip().upper().replace(" ", "").replace("-", "").replace("_", "")
    if not key:
        return "utf-8"
    codec = _CODECS.get(key)
    if codec is None:
        raise HL7Error("unsupported character set in MSH-18", location="MSH-18", code="103")
    return codec


def _msh18(raw: bytes) -> str:
    """MSH-18, first repetition, first component, or '' when there is none."""
    if raw.startswith(_UTF8_BOM):
        raw = raw[len(_UTF8_BOM) :]
    if not raw.startswith(b"MSH") or len(raw) < 8:
        return ""
    line = raw.split(b"\r", 1)[0].split(b"\n", 1)[0]
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        text = line.decode("gb18030", errors="replace")
    if len(text) < 4:  # the first line is MSH alone: no separator to split on
        return ""
    fields = text.split(text[3])
    if len(fields) < 18:
        return ""
    value = fields[17]
    for separator in text[4:6]:  # component, repetition
        value = value.split(separator, 1)[0]
    return value.strip()


def detect_charset(raw: bytes) -> str:
    """The Python codec to decode ``raw`` with, from MSH-18 or from the bytes.

    With MSH-18 empty (or no readable MSH): "utf-8" if the bytes are strict
    UTF-8, else "gb18030".
    """
    name = _msh18(raw)
    if name:
        return codec_for(name)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return "gb18030"
    return "utf-8"


def decode_message(raw: bytes) -> tuple[str, str]:
    """Decode a message's bytes; returns ``(text, codec)``.

    A UTF-8 byte order mark is dropped. Bytes that are not valid in the chosen
    character set raise HL7Error (code 102, "data type error") naming the
    segment and the byte offset, never the bytes themselves.
    """
    codec = detect_charset(raw)
    body = raw[len(_UTF8_BOM) :] if codec == "utf-8" and raw.startswith(_UTF8_BOM) else raw
    try:
        return body.decode(codec), codec
    except UnicodeDecodeError as exc:
        line_start = max(body.rfind(b"\r", 0, exc.start), body.rfind(b"\n", 0, exc.start)) + 1
        segment = body[line_start : line_start + 3].decode("ascii", errors="replace")
        raise HL7Error(
            f"bytes are not valid {codec} (segment {segment}, byte offset {exc.start})",
            location="MSH-18",
            code="102",
        ) from None
