"""The partitioned stage's choice: stamp an event here, or send it to the resolver (pure).

Most events name a patient the index already knows, with the same identity
data as last time: those take their EMPI id from the worker's copy of
``hutong.empi.links`` (:mod:`streams.linkview`) at once. The rest go to the one resolver (ADR 0004):

* patient events (registrations, updates, merges): identity news by nature;
* an event for a record with no link yet;
* an event whose identity data differ from the last the resolver was sent for
  that record (a new phone, an ID card given at last).

:class:`Router` remembers, per record, a fingerprint of the identity last sent
to the resolver, in a bounded LRU: after a restart, or for a record pushed out,
the first event goes to the resolver again, which costs a lookup there and
changes nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from cachetools import LRUCache

from schemas.catalog import SchemaEntry
from schemas.wire import Framed

__all__ = ["Router", "fingerprint", "identity"]


def _default(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def fingerprint(patient: Mapping[str, Any]) -> bytes:
    """A digest of the identity data an event carries (the order of keys does not matter)."""
    text = json.dumps(patient, sort_keys=True, default=_default, ensure_ascii=False)
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def identity(read: Framed) -> bytes:
    """The fingerprint of an event's identity data as read: a digest of the Avro bytes of
    its ``patient`` and of that field's type (a tenth of :func:`fingerprint`'s cost).
    Every event schema carries the same patient type, so a patient's lab results,
    orders and registrations digest alike; under another type (another schema version)
    the same identity digests differently, which costs one more look by the resolver
    and changes nothing."""
    written = read.field_bytes("patient")
    if written is None:
        return fingerprint(read.record["patient"])
    digest = hashlib.blake2b(written, digest_size=16, person=b"avro-patient")
    digest.update(_patient_type(read.entry))
    return digest.digest()


_PATIENT_TYPES: dict[str, bytes] = {}


def _patient_type(entry: SchemaEntry) -> bytes:
    """A digest of the ``patient`` field's type in ``entry``'s schema (kept per schema)."""
    held = _PATIENT_TYPES.get(entry.schema_str)
    if held is None:
        field = next(f for f in json.loads(entry.schema_str)["fields"] if f["name"] == "patient")
        text = json.dumps(field["type"], sort_keys=True, ensure_ascii=False)
        held = _PATIENT_TYPES[entry.schema_str] = hashlib.blake2b(
            text.encode(), digest_size=16).digest()
    return held


class Router:
    """Decides, per event, whether the local link is enough."""

    def __init__(self, capacity: int = 500_000) -> None:
        self._sent: LRUCache[bytes, bytes] = LRUCache(maxsize=capacity)

    def local_link(self, key: bytes, event: Mapping[str, Any], linked: str | None,
                   digest: bytes) -> bool:
        """True when ``event`` may take the EMPI id ``linked`` here; otherwise the
        event must go to the resolver, and its identity (``digest``, its :func:`identity`)
        is remembered as sent."""
        if linked is not None and event.get("event_type") != "patient" \
                and self._sent.get(key) == digest:
            return True
        self._sent[key] = digest
        return False
