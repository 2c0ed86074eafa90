"""Whether a hit becomes an alert: first reports and the repeat window.

A patient with a high potassium is often re-tested within the hour; the ward
needs one phone call, not one per tube. :class:`Dedup` remembers, per
(facility, patient, rule), the result time and event of the last alert:

==============  ================================================================
decision        when
==============  ================================================================
``new``         nothing remembered, or the last alert's result is a window or
                more away from this one (measured on result time, either way,
                so a late-arriving older result is judged by the same window)
``replay``      the remembered alert came from this very event: a redelivered
                message raises the same alert again (its id is deterministic, so
                downstream it is the same alert), it is not lost
``window``      the last alert's result is less than a window away
``first-only``  the rule is reported once only, and was
==============  ================================================================

The key holds the facility because the facility that must act on a result is
the one that sent it: a patient's alert at one hospital does not stand for the
call another hospital owes its own ward. The patient is the EMPI id, else the
facility's patient id.

State is a key-value table (:meth:`Dedup.changes` gives what to write, ``None``
to delete; :meth:`Dedup.restore` reads it all back after a restart). Window
entries older than a window before the newest result seen are dropped when the
table grows past ``max_entries`` (and by :meth:`Dedup.prune`); first-only
entries are kept for good, since forgetting one would report it again.

=======================================  =====================================================
key (JSON list)                          value
=======================================  =====================================================
``["F001", "E-42", "potassium-high"]``   ``{"at": ISO time, "event_id": ..., "first_only": bool}``
=======================================  =====================================================
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from streams.alerts.evaluate import Hit

__all__ = ["DEFAULT_WINDOW", "Decision", "Dedup", "Entry", "dedup_key", "patient_of"]

DEFAULT_WINDOW: Final = timedelta(minutes=60)

Reason = Literal["new", "replay", "window", "first-only"]


def patient_of(event: Mapping[str, Any]) -> str:
    """The patient a result is about: the EMPI id, else ``source:`` and the facility's id."""
    return str(event.get("empi_id") or f"source:{event.get('source_patient_id')}")


def dedup_key(facility_id: str, patient: str, rule_id: str) -> str:
    return json.dumps([facility_id, patient, rule_id], ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether to raise an alert for a hit, and why."""

    alert: bool
    reason: Reason
    key: str


@dataclass(frozen=True, slots=True)
class Entry:
    """The last alert remembered for one key."""

    at: datetime
    event_id: str
    first_only: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "event_id": self.event_id,
                "first_only": self.first_only}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Entry:
        return cls(datetime.fromisoformat(data["at"]), str(data["event_id"]),
                   bool(data.get("first_only", False)))


class Dedup:
    """The de-duplication state of one stream partition."""

    def __init__(self, window: timedelta = DEFAULT_WINDOW, *, max_entries: int = 100_000) -> None:
        if window <= timedelta(0) or max_entries < 1:
            raise ValueError("the window must be positive and max_entries at least 1")
        self.window = window
        self.max_entries = max_entries
        self._window: dict[str, Entry] = {}
        self._first: dict[str, Entry] = {}
        self._changed: dict[str, Entry | None] = {}
        self._latest: datetime | None = None

    def __len__(self) -> int:
        return len(self._window) + len(self._first)

    def admit(self, event: Mapping[str, Any], hit: Hit) -> Decision:
        """Decide for one hit of ``event`` and remember an alert it becomes."""
        key = dedup_key(str(event.get("facility_id")), patient_of(event), hit.rule_id)
        event_id, at = str(event.get("event_id")), hit.result_at
        self._latest = at if self._latest is None else max(self._latest, at)
        first = self._first.get(key)
        if first is not None:
            return Decision(first.event_id == event_id,
                            "replay" if first.event_id == event_id else "first-only", key)
        last = self._window.get(key)
        if last is not None and last.event_id == event_id:
            return Decision(True, "replay", key)
        if last is not None and abs(at - last.at) < self.window:
            return Decision(False, "first-only" if hit.rule.first_only else "window", key)
        entry = Entry(at, event_id, hit.rule.first_only)
        if entry.first_only:
            self._window.pop(key, None)
            self._first[key] = self._changed[key] = entry
        elif last is None or at >= last.at:
            self._window[key] = self._changed[key] = entry
            if len(self._window) > self.max_entries:
                self._shrink()
        return Decision(True, "new", key)

    def prune(self, now: datetime | None = None) -> int:
        """Drop window entries a window or more before ``now`` (default: the newest result)."""
        now = now or self._latest
        if now is None:
            return 0
        old = [k for k, e in self._window.items() if now - e.at >= self.window]
        for key in old:
            del self._window[key]
            self._changed[key] = None
        return len(old)

    def _shrink(self) -> None:
        self.prune()
        excess = len(self._window) - self.max_entries
        if excess > 0:
            for key in sorted(self._window, key=lambda k: self._window[k].at)[:excess]:
                del self._window[key]
                self._changed[key] = None

    def changes(self) -> dict[str, dict[str, Any] | None]:
        """The entries changed since the last call (None: delete), to write to the table."""
        out = {k: e.to_dict() if e else None for k, e in self._changed.items()}
        self._changed.clear()
        return out

    def entries(self) -> dict[str, dict[str, Any]]:
        """Every entry, as the table holds it."""
        return {k: e.to_dict() for k, e in (self._window | self._first).items()}

    @classmethod
    def restore(cls, entries: Mapping[str, Mapping[str, Any] | None] |
                Iterable[tuple[str, Mapping[str, Any] | None]],
                window: timedelta = DEFAULT_WINDOW, *, max_entries: int = 100_000) -> Dedup:
        """The state again from the table's entries (None values are deletions)."""
        state = cls(window, max_entries=max_entries)
        items = entries.items() if isinstance(entries, Mapping) else entries
        for key, value in items:
            if value is None:
                continue
            entry = Entry.from_dict(value)
            (state._first if entry.first_only else state._window)[key] = entry
            state._latest = entry.at if state._latest is None else max(state._latest, entry.at)
        return state

    def to_dict(self) -> dict[str, Any]:
        """The whole state as one JSON-ready dict (window in seconds)."""
        return {"window": self.window.total_seconds(), "max_entries": self.max_entries,
                "entries": self.entries()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Dedup:
        return cls.restore(data["entries"], timedelta(seconds=data["window"]),
                           max_entries=int(data["max_entries"]))
