"""HL7 v2 acknowledgements, built by pure functions from a message and an outcome.

    MSH  receiving and sending application/facility swapped; the message's
         delimiters, processing id, version (MSH-12) and charset (MSH-18), so the
         ACK can be encoded in the sender's character set; ``ACK^<trigger>^ACK``
    MSA  code, the message's control id, a text (MSA-3, kept for v2.4 and older)
    ERR  for errors: v2.5+ ERR-2 location, ERR-3 table 0357 code, ERR-4 severity,
         ERR-7 the reason; v2.3/2.4 ERR-1 ``segment^seq^field^code&text&HL70357``

Call it only once the outcome is known: AA/CA after Kafka confirmed delivery.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from hutong.errors import HL7Error
from producers.hl7v2.escape import DEFAULT_DELIMITERS, Delimiters, escape
from producers.hl7v2.message import Message
from producers.hl7v2.types import DEFAULT_TZ

__all__ = ["ACK_CODES", "DEFAULT_VERSION", "ERROR_CODES", "build_ack",
           "build_ack_for_unparseable"]

#: HL7 table 0008: original mode (AA, AE, AR) and enhanced mode commit (CA, CE, CR).
ACK_CODES = frozenset({"AA", "AE", "AR", "CA", "CE", "CR"})
#: The version of an ACK to a message whose MSH-12 could not be read.
DEFAULT_VERSION = "2.4"
#: HL7 table 0357, message error condition codes.
ERROR_CODES = {
    "0": "Message accepted", "100": "Segment sequence error",
    "101": "Required field missing", "102": "Data type error",
    "103": "Table value not found", "104": "Value too long",
    "200": "Unsupported message type", "201": "Unsupported event code",
    "202": "Unsupported processing id", "203": "Unsupported version id",
    "204": "Unknown key identifier", "205": "Duplicate key identifier",
    "206": "Application record locked", "207": "Application internal error",
}
_LOCATION = re.compile(r"([A-Z][A-Z0-9]{2})(?:\[(\d+)\])?(?:-(\d+)(?:\[(\d+)\])?)?", re.ASCII)
_SCRAPE_LIMIT = 199


@dataclass(frozen=True, slots=True)
class _Peer:
    """What the ACK takes from the message, each value already escaped."""

    delimiters: Delimiters = DEFAULT_DELIMITERS
    application: str = ""  # MSH-3 of the message
    facility: str = ""  # MSH-4
    receiving_application: str = ""  # MSH-5
    receiving_facility: str = ""  # MSH-6
    trigger: str = ""
    control_id: str = ""
    processing_id: str = "P"
    version: str = DEFAULT_VERSION
    charset: str = ""


def _peer(msg: Message) -> _Peer:
    f = msg.msh.field
    return _Peer(msg.delimiters, f(3), f(4), f(5), f(6), escape(msg.trigger, msg.delimiters),
                 f(10), f(11) or "P", f(12) or DEFAULT_VERSION, f(18))


def _scrape(raw_text: str) -> _Peer:
    """Best effort on text that did not parse: the MSH fields that can be read."""
    text = raw_text.lstrip("\ufeff\r\n\t ")
    if len(text) < 4 or not text.startswith("MSH") or text[3].isalnum() or text[3].isspace():
        return _Peer()
    fields = text.split("\r", 1)[0].split("\n", 1)[0].split(text[3])
    component = text[4] if len(text) > 4 and not text[4].isalnum() else ""

    def value(n: int) -> str:  # MSH-n, first component, as plain text
        raw = fields[n - 1] if n - 1 < len(fields) else ""
        if component and component != text[3]:
            raw = raw.split(component, 1)[0]
        return escape(raw[:_SCRAPE_LIMIT])

    trigger = fields[8].split(component)[1:2] if len(fields) > 8 and component else []
    return _Peer(DEFAULT_DELIMITERS, value(3), value(4), value(5), value(6),
                 escape("".join(trigger)[:_SCRAPE_LIMIT]), value(10),
                 value(11) or "P", value(12) or DEFAULT_VERSION, value(18))


def _version(peer: _Peer) -> tuple[int, ...]:
    """MSH-12.1 as numbers; an unreadable version is taken as 2.4."""
    head = peer.version.split(peer.delimiters.component, 1)[0]
    try:
        return tuple(int(part) for part in head.split("."))
    except ValueError:
        return (2, 4)


def _err(error: HL7Error, peer: _Peer) -> str:
    d = peer.delimiters
    code = error.code if error.code in ERROR_CODES else "207"
    match = _LOCATION.fullmatch(error.location or "")
    where: list[str] = []
    if match:
        segment, seq, field, rep = match.groups()
        where = [segment, seq or ("1" if field else ""), field or "", rep or ""]
        while where and not where[-1]:
            where.pop()
    if _version(peer) >= (2, 5):
        located = d.component.join(where)
        kind = d.component.join((code, ERROR_CODES[code], "HL70357"))
        reason = escape(error.reason, d)
        return d.field.join(("ERR", "", located, kind, "E", "", "", reason))
    eld = [*where, "", "", ""][:3]
    eld.append(d.subcomponent.join((code, ERROR_CODES[code], "HL70357")))
    return d.field.join(("ERR", d.component.join(eld)))


def _timestamp(now: datetime) -> str:
    """MSH-7: local time in China with its offset (naive ``now`` is written as is)."""
    if now.tzinfo is not None:
        now = now.astimezone(DEFAULT_TZ)
    return now.strftime("%Y%m%d%H%M%S%z")


def _render(peer: _Peer, code: str, text: str, error: HL7Error | None, control_id: str,
            now: datetime) -> str:
    if code not in ACK_CODES:
        raise ValueError(f"not an HL7 acknowledgement code: {code!r}")
    d = peer.delimiters
    message_type = ["ACK", peer.trigger, "ACK"] if _version(peer) >= (2, 3, 1) else [
        "ACK", peer.trigger]
    msh = d.field.join((
        "MSH", d.encoding_characters, peer.receiving_application, peer.receiving_facility,
        peer.application, peer.facility, _timestamp(now), "",
        d.component.join(message_type).rstrip(d.component), escape(control_id, d),
        peer.processing_id, peer.version, "", "", "", "", "", peer.charset,
    )).rstrip(d.field)
    if error is not None and not text:
        text = error.reason
    segments = [msh, d.field.join(("MSA", code, peer.control_id, escape(text, d))).rstrip(d.field)]
    if error is not None and code not in ("AA", "CA"):
        segments.append(_err(error, peer))
    return "".join(segment + "\r" for segment in segments)  # every segment ends in CR


def build_ack(msg: Message | None, code: str, *, text: str = "",
              error: HL7Error | None = None, control_id: str, now: datetime) -> str:
    """The ACK to ``msg`` (None when there is no message to answer: defaults are used).

    ``code`` is AA/AE/AR (original mode) or CA/CE/CR (enhanced mode commit);
    ``control_id`` is the ACK's own MSH-10; ``text`` defaults to the error's reason.
    An ERR segment is added for ``error`` unless the code accepts the message.
    """
    peer = _peer(msg) if msg is not None else _Peer()
    return _render(peer, code, text, error, control_id, now)


def build_ack_for_unparseable(raw_text: str, code: str, error: HL7Error | None,
                              control_id: str, now: datetime) -> str:
    """The ACK to text that is not a readable message: MSA-2 is its MSH-10 if that can be
    scraped, else empty. Uses the default delimiters ``|^~\\&``."""
    return _render(_scrape(raw_text), code, "", error, control_id, now)
