"""A fast HL7 v2 tokenizer: segments and fields by ``str.split``, nothing more.

hl7apy builds a validated tree (about 100 messages/s here); this module splits
each segment once into fields (hundreds of thousands of messages/s) and splits
components, repetitions and subcomponents only when a value is asked for.

Field numbers are the HL7 ones. In MSH the field separator itself is MSH-1 and
the encoding characters are MSH-2, so ``msh.field(9)`` is the message type.
Locations are written ``SEG[occurrence]-field[repetition]``, e.g. ``OBX[3]-5``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

from hutong.errors import HL7Error
from producers.hl7v2.escape import Delimiters, unescape

__all__ = ["Message", "Segment"]


def _looks_like_segment(line: str, field_sep: str) -> bool:
    name = line[:3]
    return len(line) >= 3 and name.isascii() and name.isalnum() and name.isupper() and (
        len(line) == 3 or line[3] == field_sep
    )


def _split_segments(text: str, field_sep: str) -> list[str]:
    """Split on CR; a LF ends a segment only where a segment name follows it."""
    lines = text.split("\r")
    if "\n" not in text:
        return [line for line in lines if line]
    out: list[str] = []
    for chunk in lines:
        for piece in chunk.split("\n"):
            if out and piece and not _looks_like_segment(piece, field_sep):
                out[-1] += "\n" + piece  # a line break inside a field
            elif piece:
                out.append(piece)
    return out


def _delimiters(text: str) -> Delimiters:
    if len(text) < 8:
        raise HL7Error("MSH segment too short to hold its delimiters", location="MSH-1")
    field = text[3]
    if field.isalnum() or field.isspace():
        raise HL7Error("field separator is missing or not a delimiter", location="MSH-1")
    encoding = text[4:].split(field, 1)[0]
    # 4 characters; v2.7 adds a fifth (truncation), which is accepted and ignored.
    chars = encoding[:4]
    if len(encoding) not in (4, 5) or len(set(chars + field)) != 5:
        raise HL7Error("MSH-2 must hold four distinct encoding characters", location="MSH-2")
    if any(c.isalnum() or c.isspace() for c in chars):
        raise HL7Error("MSH-2 encoding characters must not be letters, digits or spaces",
                       location="MSH-2")
    return Delimiters(field, chars[0], chars[1], chars[2], chars[3])


class Segment:
    """One segment: its fields split once; components split on demand."""

    __slots__ = ("_d", "_fields", "_offset", "charset", "index", "name")

    def __init__(self, raw: str, index: int, delimiters: Delimiters, charset: str) -> None:
        self._d = delimiters
        self._fields = raw.split(delimiters.field)
        self.name = self._fields[0]
        #: 1-based occurrence of this segment name in the message.
        self.index = index
        self.charset = charset
        # In MSH, list position n holds field n + 1 (MSH-1 is the separator itself).
        self._offset = 1 if self.name == "MSH" else 0

    def __repr__(self) -> str:
        return f"<Segment {self.name}[{self.index}]>"

    def field(self, n: int) -> str:
        """Field ``n`` as written (escaped, all repetitions), '' when absent."""
        if self._offset and n == 1:
            return self._d.field
        i = n - self._offset
        return self._fields[i] if 0 < i < len(self._fields) else ""

    def repetitions(self, n: int) -> list[str]:
        """The repetitions of field ``n`` as written; [] when the field is empty."""
        value = self.field(n)
        if not value:
            return []
        if self._offset and n in (1, 2):
            return [value]
        return value.split(self._d.repetition)

    def get(self, n: int, comp: int = 1, rep: int = 1, sub: int = 1) -> str:
        """One value, unescaped; '' when absent or the HL7 null ``""``."""
        if self._offset and n <= 2:
            return self.field(n)
        fields, i = self._fields, n - self._offset
        value = fields[i] if 0 < i < len(fields) else ""
        if not value:
            return ""
        d = self._d  # repetition, then component, then subcomponent (unrolled: hot)
        if d.repetition in value:
            parts = value.split(d.repetition)
            value = parts[rep - 1] if 0 < rep <= len(parts) else ""
        elif rep != 1:
            return ""
        if d.component in value:
            parts = value.split(d.component)
            value = parts[comp - 1] if 0 < comp <= len(parts) else ""
        elif comp != 1:
            return ""
        if d.subcomponent in value:
            parts = value.split(d.subcomponent)
            value = parts[sub - 1] if 0 < sub <= len(parts) else ""
        elif sub != 1:
            return ""
        if value == '""':
            return ""
        return unescape(value, d, charset=self.charset) if d.escape in value else value

    def repetition_text(self, n: int, rep: int = 1) -> str:
        """One whole repetition unescaped, its component separators kept as written.

        For text values (ST, TX, FT) whose senders did not escape ``^`` or ``&``.
        """
        reps = self.repetitions(n)
        value = reps[rep - 1] if 0 < rep <= len(reps) else ""
        if value == '""':
            return ""
        return unescape(value, self._d, charset=self.charset)

    def location(self, field: int | None = None, rep: int | None = None) -> str:
        """This segment's place, e.g. ``OBX[3]``, ``OBX[3]-5``, ``PID[1]-3[2]``."""
        text = f"{self.name}[{self.index}]"
        if field is not None:
            text += f"-{field}"
            if rep is not None:
                text += f"[{rep}]"
        return text


class Message:
    """A parsed HL7 v2 message: an ordered list of segments and the MSH shortcuts."""

    __slots__ = ("_by_name", "all_segments", "delimiters", "msh")

    def __init__(self, segments: list[Segment], delimiters: Delimiters) -> None:
        self.all_segments = segments
        self.delimiters = delimiters
        self.msh = segments[0]
        self._by_name: dict[str, list[Segment]] = {}
        for seg in segments:
            self._by_name.setdefault(seg.name, []).append(seg)

    @classmethod
    def parse(cls, text: str, *, charset: str = "utf-8") -> Message:
        """Tokenize ``text``; ``charset`` is the codec used for ``\\Xhh\\`` escapes."""
        text = text.lstrip("\ufeff\r\n\t ")
        if not text.startswith("MSH"):
            raise HL7Error("message does not start with an MSH segment", location="MSH",
                           code="100")
        delimiters = _delimiters(text)
        counts: dict[str, int] = {}
        segments = []
        for raw in _split_segments(text, delimiters.field):
            seg = Segment(raw, 0, delimiters, charset)
            seg.index = counts[seg.name] = counts.get(seg.name, 0) + 1
            segments.append(seg)
        return cls(segments, delimiters)

    def content_digest(self) -> str:
        """SHA-256 of the segments, MSH-7 (when the message was built) left out.

        A sender that resends a message rebuilds MSH-7 but nothing else; the digest
        tells that resend from another message reusing the control id.
        """
        digest = hashlib.sha256()
        for seg in self.all_segments:
            fields = seg._fields
            if seg is self.msh and len(fields) > 6:
                fields = [*fields[:6], "", *fields[7:]]
            digest.update(self.delimiters.field.join(fields).encode("utf-8", "surrogatepass"))
            digest.update(b"\r")
        return digest.hexdigest()

    def __iter__(self) -> Iterator[Segment]:
        return iter(self.all_segments)

    def segments(self, name: str) -> list[Segment]:
        """Every segment called ``name``, in message order."""
        return list(self._by_name.get(name, ()))

    def segment(self, name: str) -> Segment | None:
        """The first segment called ``name``, or None."""
        found = self._by_name.get(name)
        return found[0] if found else None

    @property
    def message_type(self) -> str:
        """MSH-9.1, the message type, e.g. ``ORU``."""
        return self.msh.get(9)

    @property
    def trigger(self) -> str:
        """MSH-9.2, the trigger event, e.g. ``R01``."""
        return self.msh.get(9, 2)

    @property
    def structure(self) -> str:
        """MSH-9.3, the message structure, e.g. ``ORU_R01`` (v2.3.1+)."""
        return self.msh.get(9, 3)

    @property
    def control_id(self) -> str:
        """MSH-10, the message control id."""
        return self.msh.get(10)

    @property
    def processing_id(self) -> str:
        """MSH-11.1: P (production), D (debugging) or T (training)."""
        return self.msh.get(11)

    @property
    def version(self) -> str:
        """MSH-12.1, the HL7 version, e.g. ``2.4``."""
        return self.msh.get(12)

    @property
    def sending_application(self) -> str:
        """MSH-3.1."""
        return self.msh.get(3)

    @property
    def sending_facility(self) -> str:
        """MSH-4.1."""
        return self.msh.get(4)

    @property
    def receiving_application(self) -> str:
        """MSH-5.1."""
        return self.msh.get(5)

    @property
    def receiving_facility(self) -> str:
        """MSH-6.1."""
        return self.msh.get(6)

    @property
    def accept_ack_type(self) -> str:
        """MSH-15: AL, NE, ER or SU (enhanced mode); '' for original mode."""
        return self.msh.get(15)

    @property
    def application_ack_type(self) -> str:
        """MSH-16: AL, NE, ER or SU."""
        return self.msh.get(16)

    @property
    def charset(self) -> str:
        """MSH-18, first repetition: the HL7 name of the character set."""
        return self.msh.get(18)
