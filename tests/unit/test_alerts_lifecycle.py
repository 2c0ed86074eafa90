"""The alert record, its escalation and acknowledgement, the turnaround; the issue's scenario."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from schemas import catalog, wire
from streams.alerts import (
    Dedup,
    EscalationStep,
    acknowledge,
    alert_id_for,
    escalate,
    evaluate,
    load_default,
    raise_alert,
    turnaround,
)
from streams.alerts.lifecycle import due
from tests.unit.test_alerts_events import (
    OBSERVED,
    PATIENT_NAME,
    RAISED,
    imaging_report,
    lab_result,
)

ALERTS = catalog.schema("critical-alert")
#: A plan a test can wait for: the on-duty doctor after 2 s, medical affairs 3 s later.
SHORT = (EscalationStep(timedelta(0), "ordering-provider"),
         EscalationStep(timedelta(seconds=2), "on-duty-doctor"),
         EscalationStep(timedelta(seconds=3), "medical-affairs"))
RULES = replace(load_default(), escalation=SHORT)


def potassium_alert(value: float = 6.8, **overrides: Any) -> dict[str, Any]:
    event = lab_result("2823-3", value, **overrides)
    (hit,) = evaluate(event, RULES)
    return raise_alert(event, hit, RULES, raised_at=RAISED)


def ack(alert: dict[str, Any], at: datetime, by: str = "D0012") -> dict[str, Any]:
    return {"alert_id": alert["alert_id"], "acknowledged_by": by, "acknowledged_at": at,
            "channel": "web", "note": None}


def later(seconds: float) -> datetime:
    return RAISED + timedelta(seconds=seconds)


def test_acceptance_potassium_raised_escalated_acknowledged() -> None:
    """Issue scenario: K 6.8 mmol/L (2823-3, adult) raises, escalates, is closed."""
    event = lab_result("2823-3", 6.8, "mmol/L")
    hits = evaluate(event, RULES)
    assert [h.rule_id for h in hits] == ["potassium-high"]
    assert Dedup().admit(event, hits[0]).alert

    alert = raise_alert(event, hits[0], RULES, raised_at=RAISED)
    assert wire.check(ALERTS, alert) is None
    assert alert["empi_id"] == "E-42"
    assert (alert["test_code"], alert["value"], alert["unit"]) == ("K", "6.8", "mmol/L")
    assert (alert["standard_code"], alert["standard_value"], alert["standard_unit"]) == (
        "2823-3", 6.8, "mmol/L")
    assert alert["rule_id"] == "potassium-high"
    assert alert["rule_description"] == "potassium > 6.2 mmol/L (except neonates)"
    assert alert["rule_set"] == "hutong-default-2026.12"
    assert alert["facility_id"] == "QSXRMYY"
    assert alert["ordering_provider_id"] == "D0012"
    assert (alert["status"], alert["notify"], alert["deadline"]) == (
        "raised", "ordering-provider", later(2))

    assert escalate(alert, later(1.999), SHORT) is None  # not yet
    escalated = escalate(alert, later(2), SHORT)
    assert escalated is not None and wire.check(ALERTS, escalated) is None
    assert (escalated["status"], escalated["escalation_level"], escalated["notify"]) == (
        "escalated", 1, "on-duty-doctor")

    closed = acknowledge(escalated, ack(escalated, later(4)))
    assert closed.record is not None and wire.check(ALERTS, closed.record) is None
    assert (closed.record["status"], closed.record["acknowledged_by"]) == ("acknowledged", "D0012")
    assert escalate(closed.record, later(60), SHORT) is None  # closed: no more steps
    assert closed.turnaround is not None
    assert closed.turnaround.seconds() == {
        "result_to_alert": (RAISED - OBSERVED).total_seconds(),
        "alert_to_ack": 4.0,
        "result_to_ack": (RAISED - OBSERVED).total_seconds() + 4.0,
    }


def test_the_record_has_every_field_of_the_schema_and_round_trips() -> None:
    alert = potassium_alert()
    fields = [f["name"] for f in ALERTS.parsed["fields"]]
    assert sorted(alert) == sorted(fields)
    assert alert["patient_name"] == PATIENT_NAME  # for the clinician who must act
    _, back = wire.decode(wire.encode(ALERTS, alert))
    assert back == alert


def test_times_are_cut_to_milliseconds_as_avro_keeps_them() -> None:
    event = lab_result("2823-3", 6.8)
    (hit,) = evaluate(event, RULES)
    alert = raise_alert(event, hit, RULES, raised_at=RAISED.replace(microsecond=123456))
    assert alert["raised_at"].microsecond == 123000
    assert alert["deadline"] == alert["raised_at"] + timedelta(seconds=2)


@pytest.mark.parametrize(("seconds", "level", "notify", "deadline"), [
    (1.9, 0, "ordering-provider", 2),
    (2, 1, "on-duty-doctor", 2 + 3),
    (2.5, 1, "on-duty-doctor", 2.5 + 3),  # the timer fired late: the doctor still gets 3 s
])
def test_escalation_step_timing(seconds: float, level: int, notify: str, deadline: float) -> None:
    alert = potassium_alert()
    step = escalate(alert, later(seconds), SHORT) or alert
    assert (step["escalation_level"], step["notify"], step["deadline"]) == (
        level, notify, later(deadline))
    assert step["raised_at"] == RAISED  # first raised, whatever the step
    assert step["status_at"] == (RAISED if level == 0 else later(seconds))


def test_the_last_step_has_no_deadline() -> None:
    first = escalate(potassium_alert(), later(2), SHORT)
    assert first is not None
    assert escalate(first, later(4.9), SHORT) is None
    last = escalate(first, later(5), SHORT)
    assert last is not None
    assert (last["escalation_level"], last["notify"], last["deadline"]) == (
        2, "medical-affairs", None)
    assert escalate(last, later(3600), SHORT) is None
    assert not due(last, later(3600))


def test_a_one_step_plan_never_escalates() -> None:
    one = replace(RULES, escalation=SHORT[:1])
    event = lab_result("2823-3", 6.8)
    (hit,) = evaluate(event, one)
    alert = raise_alert(event, hit, one, raised_at=RAISED)
    assert alert["deadline"] is None
    assert escalate(alert, later(3600), SHORT[:1]) is None


def test_acknowledged_before_escalation() -> None:
    alert = potassium_alert()
    outcome = acknowledge(alert, ack(alert, later(1)))
    assert outcome.accepted and outcome.record is not None
    record = outcome.record
    assert (record["status"], record["escalation_level"], record["deadline"]) == (
        "acknowledged", 0, None)
    assert (record["acknowledged_at"], record["status_at"], record["ack_channel"]) == (
        later(1), later(1), "web")
    assert escalate(record, later(2), SHORT) is None


def test_acknowledged_after_escalation_keeps_the_level() -> None:
    escalated = escalate(potassium_alert(), later(2), SHORT)
    assert escalated is not None
    record = acknowledge(escalated, ack(escalated, later(3), by="D0099")).record
    assert record is not None
    assert (record["escalation_level"], record["notify"], record["acknowledged_by"]) == (
        1, "on-duty-doctor", "D0099")
    assert turnaround(record).alert_to_ack == timedelta(seconds=3)


@pytest.mark.parametrize(("alert", "change", "refused"), [
    (None, {}, "unknown-alert"),
    ("raised", {"alert_id": "another"}, "other-alert"),
    ("acknowledged", {}, "already-acknowledged"),
    ("retracted", {}, "not-open"),
    ("raised", {"acknowledged_by": ""}, "incomplete-ack"),
    ("raised", {"acknowledged_at": None}, "incomplete-ack"),
    ("raised", {"acknowledged_at": datetime(2026, 3, 1, 10, 0)}, "incomplete-ack"),  # naive
])
def test_acknowledgements_that_cannot_apply_are_answered(alert: str | None,
                                                         change: dict[str, Any],
                                                         refused: str) -> None:
    record = potassium_alert()
    current = None if alert is None else record | {"status": alert}
    outcome = acknowledge(current, ack(record, later(1)) | change)
    assert (outcome.accepted, outcome.record, outcome.refused) == (False, None, refused)
    assert outcome.turnaround is None


def test_a_second_acknowledgement_is_refused() -> None:
    alert = potassium_alert()
    first = acknowledge(alert, ack(alert, later(1))).record
    assert first is not None
    assert acknowledge(first, ack(alert, later(2), by="D0099")).refused == "already-acknowledged"


@pytest.mark.parametrize(("observed", "acked", "expected"), [
    (OBSERVED, later(90), (RAISED - OBSERVED, timedelta(seconds=90),
                           RAISED - OBSERVED + timedelta(seconds=90))),
    (None, later(90), (None, timedelta(seconds=90), None)),
    (OBSERVED, None, (RAISED - OBSERVED, None, None)),
    (OBSERVED, later(-5), (RAISED - OBSERVED, timedelta(seconds=-5),
                           RAISED - OBSERVED - timedelta(seconds=5))),  # kept as sent
])
def test_turnaround(observed: datetime | None, acked: datetime | None,
                    expected: tuple[timedelta | None, ...]) -> None:
    alert = potassium_alert() | {"observed_at": observed, "acknowledged_at": acked}
    spans = turnaround(alert)
    assert (spans.result_to_alert, spans.alert_to_ack, spans.result_to_ack) == expected


def test_alert_ids_are_deterministic() -> None:
    first, again = potassium_alert(), potassium_alert(7.1)
    assert first["alert_id"] == again["alert_id"] == alert_id_for(
        "9d0c5b1e-0000-5000-8000-000000000001", "potassium-high")
    other_event = potassium_alert(event_id="9d0c5b1e-0000-5000-8000-000000000002")
    assert other_event["alert_id"] != first["alert_id"]
    assert alert_id_for("e", "potassium-high") != alert_id_for("e", "potassium-low")
    # pinned: a changed namespace would give every replayed result a second alert
    assert alert_id_for("e", "potassium-high") == "4367a4df-b129-5d1c-b159-7f02bbf097d3"


def test_a_pacs_alert() -> None:
    event = imaging_report()
    (hit,) = evaluate(event, RULES)
    alert = raise_alert(event, hit, RULES, raised_at=RAISED)
    assert wire.check(ALERTS, alert) is None
    assert (alert["rule_id"], alert["source_event_type"], alert["test_code"],
            alert["test_name"]) == ("pacs-critical", "imaging-report", "CT-HEAD", "头颅CT平扫")
    assert (alert["value"], alert["standard_value"], alert["ordering_provider_id"]) == (
        None, None, None)
    assert alert["observed_at"] == event["reported_at"]


def test_a_flag_alert_carries_the_standard_value() -> None:
    event = lab_result("2823-3", 6.0, flags=("HH",))
    (hit,) = evaluate(event, RULES)
    alert = raise_alert(event, hit, RULES, raised_at=RAISED)
    assert (alert["rule_id"], alert["standard_value"], alert["standard_unit"]) == (
        "flag-HH", 6.0, "mmol/L")
    assert alert["rule_description"] == "flagged HH (critical high) by the laboratory"


def test_the_facility_rule_set_is_named_on_the_alert() -> None:
    rules = replace(RULES, facility="QSXRMYY", facility_version="3")
    event = lab_result("2823-3", 6.8)
    (hit,) = evaluate(event, rules)
    assert raise_alert(event, hit, rules, raised_at=RAISED)["rule_set"] == \
        "hutong-default-2026.12+QSXRMYY-3"
