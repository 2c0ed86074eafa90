"""Label values of the metrics, from fixed sets (pure, no I/O).

A label that takes whatever a sender writes lets hostile input grow the series
without bound; every value here comes from a closed set or from the facility
registry:

=================  ==============================================================
``facility``       a registered facility's id; ``unregistered`` for anyone else
                   (with ``intake_open``, the first 100 unregistered ids are
                   kept, then ``unregistered``)
``message_type``   :data:`MESSAGE_TYPES`: MSH-9.1 when it is one of the common
                   ones, ``CDA`` and ``JSON`` for those submissions, else ``other``
``reason``         :data:`REJECT_REASONS`, why a message was not accepted
``stage``          :data:`STAGES`, where an event is in the pipeline
``decided_by``     :data:`EMPI_OUTCOMES`, how the master index linked a record
=================  ==============================================================
"""

from __future__ import annotations

import threading
from collections.abc import Container, Iterable
from datetime import datetime

__all__ = [
    "EMPI_OUTCOMES",
    "MESSAGE_TYPES",
    "REJECT_REASONS",
    "STAGES",
    "UNREGISTERED",
    "FacilityLabels",
    "empi_outcome",
    "message_type",
    "oldest_age",
    "refusal_reason",
    "reject_reason",
    "sink_stage",
    "stream_stage",
]

UNREGISTERED = "unregistered"

#: HL7 v2 message types counted by name (MSH-9.1); CDA and JSON are HTTP submissions.
MESSAGE_TYPES = ("ADT", "ORU", "ORM", "OML", "RDE", "RDS", "MDM", "CDA", "JSON", "other")
_HL7_TYPES = frozenset(MESSAGE_TYPES[:7])

#: Why a message got no positive answer (AE/AR, HTTP 4xx/5xx).
REJECT_REASONS = (
    "unauthorised",   # unknown facility, wrong address, certificate or API key
    "unreadable",     # not HL7 at all: no MSH, bad encoding characters
    "validation",     # readable, but a required field is missing or wrong
    "duplicate_id",   # a control id (or document id) reused for other content
    "oversize",       # over the MLLP frame or HTTP body limit
    "framing",        # an MLLP frame begun and not finished in time
    "not_stored",     # Kafka did not confirm: the sender is told to resend
    "rate_limited",   # the facility is over facility_rate_limit: the sender resends later
    "internal",       # a bug in hutong; the dead letter has the exception's type
)

#: The pipeline stages, in flow order.
STAGES = ("producer", "empi", "translate", "alerts", "warehouse-sink", "document-sink",
          "webhook-sink")
_SINK_STAGES = {"warehouse": "warehouse-sink", "documents": "document-sink",
                "webhook": "webhook-sink"}

#: How a link change came about (hutong.empi.links, ``action`` and ``decided_by``).
EMPI_OUTCOMES = ("id_card", "health_card", "fellegi-sunter", "new", "review",
                 "facility-merge", "merge", "unmerge", "other")
_CARD_RULES = frozenset({"id_card", "health_card"})

#: How many unregistered facility ids an open intake labels by name.
OPEN_INTAKE_LABELS = 100


class FacilityLabels:
    """The ``facility`` label of a message: its registry id or ``unregistered``."""

    def __init__(self, registered: Container[str], *, open_intake: bool = False,
                 limit: int = OPEN_INTAKE_LABELS) -> None:
        self._registered = registered
        self._open = open_intake
        self._limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, facility_id: str | None) -> str:
        if not facility_id:
            return UNREGISTERED
        if facility_id in self._registered:
            return facility_id
        if not self._open or len(facility_id) > 64:
            return UNREGISTERED
        if facility_id in self._seen:
            return facility_id
        with self._lock:
            if len(self._seen) >= self._limit:
                return UNREGISTERED
            self._seen.add(facility_id)
        return facility_id


def message_type(content_type: str, hl7_type: str | None = None) -> str:
    """The ``message_type`` label: ``ORU``, ``CDA``, ..., or ``other``."""
    if content_type == "cda":
        return "CDA"
    if content_type == "json":
        return "JSON"
    kind = (hl7_type or "").strip().upper()
    return kind if kind in _HL7_TYPES else "other"


def reject_reason(outcome: str, *, unauthorised: bool = False, stored: bool = True,
                  error_code: str | None = None, error_text: str = "",
                  readable: bool = True) -> str | None:
    """Why a message was not accepted, from its receipt; None for AA."""
    if outcome in ("AA", "CA"):
        return None
    if unauthorised:
        return "unauthorised"
    if not stored:
        return "not_stored"
    if error_code == "205":
        return "duplicate_id"
    if error_text.startswith("internal error"):
        return "internal"
    if not readable:
        return "unreadable"
    return "validation"


def refusal_reason(status: object = None) -> str:
    """Why input was turned away before it was read (TLS, API key, HTTP body)."""
    if status == 413:
        return "oversize"
    if status == 429:
        return "rate_limited"
    if status == 400:
        return "validation"
    return "unauthorised"


def sink_stage(sink_name: str) -> str:
    """The stage of a sink: ``warehouse`` is ``warehouse-sink``."""
    return _SINK_STAGES.get(sink_name, f"{sink_name}-sink")


def stream_stage(topic: str) -> str:
    """The stream stage that reads ``topic`` (for its dead letters)."""
    return "alerts" if topic.startswith("hutong.alerts.") else "empi"


def empi_outcome(action: str, decided_by: str, score: float | None = None) -> str:
    """The ``decided_by`` label of a link change (a reviewer's id never becomes one)."""
    if action == "review":
        return "review"  # a new EMPI id, with the possible matches sent to review
    if action == "unmerge":
        return "unmerge"
    if decided_by.startswith("facility:"):
        return "facility-merge"  # the facility merged two of its ids (ADT^A40)
    if decided_by in _CARD_RULES:
        return decided_by
    if decided_by == "fellegi-sunter":
        return "new" if action == "link" and score is None else "fellegi-sunter"
    if action == "merge":
        return "merge"  # a reviewer's merge, or a review pair accepted
    return "other"


def oldest_age(times: Iterable[object], now: datetime) -> float | None:
    """Seconds since the earliest of ``times`` (aware datetimes; anything else is
    skipped); None when there is none."""
    oldest = min((t for t in times if isinstance(t, datetime) and t.tzinfo is not None),
                 default=None)
    return None if oldest is None else max(0.0, (now - oldest).total_seconds())
