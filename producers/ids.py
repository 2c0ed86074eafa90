"""Deterministic identifiers: the same message always yields the same ids.

Delivery is at least once, so a message may be received, mapped and produced
more than once; sinks collapse the copies on ``event_id``. The id is a UUIDv5
in hutong's own namespace over the facility, the message control id (MSH-10)
and the event's position in the message (``OBX3``, ``raw``, …).

Changing :data:`HUTONG_NAMESPACE` or the name layout changes every event id
ever produced: don't.
"""

from __future__ import annotations

import hashlib
import uuid

__all__ = ["HUTONG_NAMESPACE", "event_id", "raw_key", "uuid5_text"]

#: uuid5(NAMESPACE_DNS, "events.hutong"), fixed forever.
HUTONG_NAMESPACE = uuid.UUID("12bca761-6e4c-57bc-aae9-33dd468df786")

#: ASCII unit separator: cannot occur in HL7 text (control characters are escaped),
#: so ("a|b", "c") and ("a", "b|c") never give the same name.
_SEPARATOR = "\x1f"


def event_id(facility_id: str, control_id: str, position: str | int) -> str:
    """The event's id: UUIDv5 of facility, control id and position, as text."""
    name = _SEPARATOR.join((facility_id, control_id, str(position)))
    return uuid5_text(HUTONG_NAMESPACE, name)


#: The variant bits (RFC 4122: 10xx) over the high nibble of byte 8, as hex.
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def uuid5_text(namespace: uuid.UUID, name: str) -> str:
    """``str(uuid.uuid5(namespace, name))``, from the digest's hex without a ``UUID``
    object: a fifth of the cost, and the intake makes one for every event."""
    h = hashlib.sha1(namespace.bytes + name.encode(), usedforsecurity=False).hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


def raw_key(facility_id: str, control_id: str) -> str:
    """Key of ``hutong.raw.*`` records: ``facility|control id``."""
    return f"{facility_id}|{control_id}"
