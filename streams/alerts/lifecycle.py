"""The critical-value alert and its closed loop (危急值闭环管理).

An alert is a dict with every field of ``schemas/critical-alert.avsc``; each
state is a new record under the same ``alert_id`` on ``hutong.alerts.critical``:

============  ===================================  ========================================
status        made by                              notify / deadline
============  ===================================  ========================================
raised        :func:`raise_alert`                  the plan's first target / raised + the
                                                   second step's ``after``
escalated     :func:`escalate`, once the deadline  the next target / now + the step after's
              passed without an acknowledgement    ``after``; None at the last step
acknowledged  :func:`acknowledge` with an          unchanged / None
              alert-ack
============  ===================================  ========================================

``raised_at`` stays the time the alert was first raised; ``status_at`` is when
the current state was reached. A step's deadline runs from when that step was
actually reached, so each person on the plan gets their full time even when
the timer fired late. Times are cut to milliseconds, as Avro keeps them, so a
record read back equals the one written.

``alert_id`` is the UUIDv5 of the event id and the rule id: replaying a result
raises the same alert. An acknowledgement that cannot apply (unknown alert,
already acknowledged, incomplete) is answered with a reason code, never an
exception a stream would stop on.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from streams.alerts.evaluate import Hit
from streams.alerts.rules import EscalationStep, RuleSet

__all__ = ["OPEN_STATUSES", "STATUSES", "AckOutcome", "Alert", "Refusal", "Turnaround",
           "acknowledge", "alert_id_for", "due", "escalate", "raise_alert", "turnaround"]

Alert = dict[str, Any]
STATUSES: Final = ("raised", "escalated", "acknowledged", "expired")
#: Statuses an acknowledgement can close (a late acknowledgement still closes the loop).
OPEN_STATUSES: Final = frozenset({"raised", "escalated", "expired"})
#: Why an acknowledgement was not applied; bounded, so usable as a metric label.
Refusal = Literal["unknown-alert", "other-alert", "already-acknowledged", "not-open",
                  "incomplete-ack"]

_NAMESPACE: Final = uuid.UUID("0c7c3a5e-2b41-5f0e-8d36-4a1de3f7b9a2")


def _ms(at: datetime) -> datetime:
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


def _ms_or_none(at: Any) -> datetime | None:
    return _ms(at) if isinstance(at, datetime) else None


def alert_id_for(event_id: str, rule_id: str) -> str:
    """The alert a result raises under a rule: the same on every replay."""
    return str(uuid.uuid5(_NAMESPACE, f"{event_id}|{rule_id}"))


def raise_alert(event: Mapping[str, Any], hit: Hit, rule_set: RuleSet, *,
                raised_at: datetime) -> Alert:
    """The first record of the alert ``hit`` raises on ``event`` (lab result or imaging report)."""
    plan = rule_set.escalation
    lab = event.get("event_type") == "lab-result"
    raised = _ms(raised_at)
    return {
        "alert_id": alert_id_for(str(event["event_id"]), hit.rule_id),
        "event_id": event["event_id"],
        "empi_id": event.get("empi_id"),
        "facility_id": event["facility_id"],
        "source_patient_id": event["source_patient_id"],
        "patient_name": (event.get("patient") or {}).get("name"),
        "visit_number": event.get("visit_number"),
        "test_code": str(event.get("test_code") if lab else
                         event.get("procedure_code") or event.get("modality") or "imaging"),
        "test_name": event.get("test_name") if lab else event.get("procedure_name"),
        # An imaging report's text is no value and may name people: it stays in the report.
        "value": event.get("value") if lab else None,
        "unit": event.get("unit") if lab else None,
        "reference_range": event.get("reference_range") if lab else None,
        "observed_at": _ms_or_none(event.get("observed_at") if lab else
                                   event.get("reported_at") or event.get("study_at")),
        "rule_id": hit.rule_id,
        "severity": hit.rule.severity,
        "raised_at": raised,
        "status": "raised",
        "escalation_level": 0,
        "source_event_type": event.get("event_type") or "lab-result",
        "standard_code": hit.code,
        "standard_value": hit.value,
        "standard_unit": hit.unit,
        "rule_description": hit.description,
        "rule_set": rule_set.id,
        "ordering_provider_id": event.get("ordering_provider_id"),
        "ordering_department": event.get("ordering_department"),
        "notify": plan[0].notify,
        "deadline": _ms(raised + plan[1].after) if len(plan) > 1 else None,
        "status_at": raised,
        "acknowledged_by": None,
        "acknowledged_at": None,
        "ack_channel": None,
    }


def due(alert: Mapping[str, Any], now: datetime) -> bool:
    """Whether the alert is open and its step's deadline has come."""
    deadline = alert.get("deadline")
    return alert.get("status") in ("raised", "escalated") and deadline is not None \
        and now >= deadline


def escalate(alert: Mapping[str, Any], now: datetime, plan: Sequence[EscalationStep]
             ) -> Alert | None:
    """The alert's next step if its deadline passed unacknowledged, else None.

    The new record notifies the next target of ``plan``; its deadline is
    ``now`` plus the following step's ``after``, or None at the last step.
    """
    if not due(alert, now):
        return None
    level = int(alert.get("escalation_level") or 0) + 1
    if level >= len(plan):
        return None
    at = _ms(now)
    following = plan[level + 1].after if level + 1 < len(plan) else None
    return {**alert, "status": "escalated", "escalation_level": level,
            "notify": plan[level].notify, "status_at": at,
            "deadline": _ms(at + following) if following is not None else None}


@dataclass(frozen=True, slots=True)
class Turnaround:
    """The closed loop's times (None where a time is unknown)."""

    result_to_alert: timedelta | None
    alert_to_ack: timedelta | None
    result_to_ack: timedelta | None

    def seconds(self) -> dict[str, float | None]:
        """The durations in seconds, for a warehouse row or a histogram."""
        return {name: None if span is None else span.total_seconds()
                for name, span in (("result_to_alert", self.result_to_alert),
                                   ("alert_to_ack", self.alert_to_ack),
                                   ("result_to_ack", self.result_to_ack))}


def _span(start: Any, end: Any) -> timedelta | None:
    if isinstance(start, datetime) and isinstance(end, datetime):
        return end - start
    return None


def turnaround(alert: Mapping[str, Any]) -> Turnaround:
    """Result (``observed_at``) to alert (``raised_at``) to acknowledgement.

    An acknowledgement stamped before the alert (a clinician's clock behind)
    gives a negative span: kept as sent, for the warehouse to flag.
    """
    result, raised = alert.get("observed_at"), alert.get("raised_at")
    acked = alert.get("acknowledged_at")
    return Turnaround(_span(result, raised), _span(raised, acked), _span(result, acked))


@dataclass(frozen=True, slots=True)
class AckOutcome:
    """An acknowledgement applied (``record``) or refused (``refused``)."""

    record: Alert | None = None
    refused: Refusal | None = None

    @property
    def accepted(self) -> bool:
        return self.record is not None

    @property
    def turnaround(self) -> Turnaround | None:
        return turnaround(self.record) if self.record is not None else None


def acknowledge(alert: Mapping[str, Any] | None, ack: Mapping[str, Any]) -> AckOutcome:
    """Close ``alert`` (its current record, None if unknown) with an alert-ack record."""
    if alert is None:
        return AckOutcome(refused="unknown-alert")
    if ack.get("alert_id") != alert.get("alert_id"):
        return AckOutcome(refused="other-alert")
    if alert.get("status") == "acknowledged":
        return AckOutcome(refused="already-acknowledged")
    if alert.get("status") not in OPEN_STATUSES:
        return AckOutcome(refused="not-open")
    by, at, channel = ack.get("acknowledged_by"), ack.get("acknowledged_at"), ack.get("channel")
    if not isinstance(by, str) or not by.strip() or not isinstance(at, datetime) \
            or at.tzinfo is None:
        return AckOutcome(refused="incomplete-ack")
    at = _ms(at)
    return AckOutcome({**alert, "status": "acknowledged", "status_at": at,
                       "acknowledged_by": by, "acknowledged_at": at,
                       "ack_channel": channel if isinstance(channel, str) else None,
                       "deadline": None})
