"""Reading the parts of a document: which records, in which order, which value wins.

The same parts in any order, and with any part repeated (delivery is at least
once), must give the same document, so nothing here depends on the order parts
arrive in: records are deduplicated on ``event_id`` and sorted, and "the latest"
is decided by a total order (clinical time, then ``received_at``, then
``event_id``), never by position.

Two deliveries of one ``event_id`` differ when the streams processed the event
again (``hutong replay`` after a code map was added, or after the EMPI linked
it). Which one counts is a total order too (:func:`supersedes`): the linked one
(with an ``empi_id``), then the one with more standard codes, then the one with
fewer unmapped fields, then the greater canonical JSON form, which only breaks
ties. The store keeps, per group and event, only the delivery this order
prefers, so any redelivery or replay order ends with the same part, and a
stale delivery replayed after the fresh one changes nothing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sinks.docstore.model import Part

__all__ = ["NEVER", "Record", "birth_date", "chronological", "coding", "first", "latest_time",
           "moment", "newest", "number", "records_of", "subject_of", "supersedes", "text"]

Record = dict[str, Any]

_CHINA = ZoneInfo("Asia/Shanghai")
#: Earlier than any time: where a record has none, it sorts first.
NEVER = datetime.min.replace(tzinfo=_CHINA)


def _canonical(record: Record) -> str:
    return json.dumps(record, sort_keys=True, default=repr, ensure_ascii=False)


def _preference(record: Record) -> tuple[bool, int, int, str]:
    """Of two deliveries of one event, the greater is the one that counts (see the module)."""
    codes = [entry for entry in record.get("codes") or () if isinstance(entry, dict)]
    return (text(record.get("empi_id")) is not None, len(codes),
            -len(record.get("unmapped") or ()), _canonical(record))


def supersedes(new: Record, stored: Record) -> bool:
    """Whether ``new``, a delivery of the event ``stored`` is a delivery of, replaces it."""
    return _preference(new) > _preference(stored)


def records_of(parts: Sequence[Part], *schemas: str) -> list[Record]:
    """The records of the given schemas, one per ``event_id``, sorted by ``event_id``.

    Two records with one ``event_id`` are the same event delivered twice; should they
    differ, the one :func:`supersedes` prefers is kept, whatever the order.
    """
    chosen: dict[str, Record] = {}
    for schema_name, record in parts:
        if schema_name not in schemas:
            continue
        # Ranked only against another delivery of the same event (the canonical form is
        # a JSON dump of the record: most of the cost where every event comes once). A
        # record without an id is never merged.
        key = str(record.get("event_id") or "") or f"\x00{_canonical(record)}"
        held = chosen.get(key)
        if held is None or supersedes(record, held):
            chosen[key] = record
    return [chosen[key] for key in sorted(chosen)]


def _aware(when: datetime) -> datetime:
    return when.replace(tzinfo=_CHINA) if when.tzinfo is None else when


def moment(record: Record, *fields: str) -> datetime | None:
    """The first of ``fields`` that holds a datetime, timezone aware (naive: Asia/Shanghai)."""
    for name in fields:
        when = record.get(name)
        if isinstance(when, datetime):
            return _aware(when)
    return None


def latest_time(records: Iterable[Record], *fields: str) -> datetime | None:
    """The latest clinical time of ``records`` (first of ``fields`` each), else ``received_at``."""
    found = [when for record in records if (when := moment(record, *fields)) is not None]
    if not found:
        found = [when for record in records
                 if (when := moment(record, "received_at")) is not None]
    return max(found) if found else None


def _order(fields: tuple[str, ...]) -> Any:
    def key(record: Record) -> tuple[datetime, datetime, str]:
        return (moment(record, *fields) or NEVER, moment(record, "received_at") or NEVER,
                str(record.get("event_id") or ""))
    return key


def newest(records: Iterable[Record], *fields: str) -> Record:
    """The record with the latest clinical time (first of ``fields``), then ``received_at``."""
    return max(records, key=_order(fields))


def subject_of(records: Iterable[Record]) -> Record:
    """The record whose patient heads a document: the newest linked one (with an EMPI id).

    Newest by ``received_at``: the identity the facility sent last; records without an
    ``empi_id`` count only when none has one.
    """
    every = list(records)
    return newest([record for record in every if text(record.get("empi_id"))] or every)


def chronological(records: Iterable[Record], *fields: str) -> list[Record]:
    """``records`` oldest first, by the order :func:`newest` uses."""
    return sorted(records, key=_order(fields))


def coding(record: Record, field: str) -> dict[str, Any] | None:
    """The standard code (``hutong.Coding``) code translation gave ``field``, if any."""
    for entry in record.get("codes") or ():
        if isinstance(entry, dict) and entry.get("field") == field and entry.get("code"):
            return entry
    return None


def text(raw: Any) -> str | None:
    """A value as stripped text; None for None and empty text."""
    if raw is None:
        return None
    stripped = str(raw).strip()
    return stripped or None


def first(*values: Any) -> str | None:
    """The first of ``values`` with text in it."""
    for raw in values:
        if (found := text(raw)) is not None:
            return found
    return None


def number(raw: Any) -> float | None:
    """A finite float, else None."""
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return None
    return float(raw) if math.isfinite(raw) else None


def birth_date(raw: Any) -> date | None:
    """A birth date (an Avro ``date``); a datetime is cut to its date."""
    if isinstance(raw, datetime):
        return raw.date()
    return raw if isinstance(raw, date) else None
