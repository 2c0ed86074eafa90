"""The metrics' label values come from closed sets, whatever a sender writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hutong.metrics.labels import (
    EMPI_OUTCOMES,
    MESSAGE_TYPES,
    REJECT_REASONS,
    STAGES,
    UNREGISTERED,
    FacilityLabels,
    empi_outcome,
    message_type,
    oldest_age,
    refusal_reason,
    reject_reason,
    sink_stage,
    stream_stage,
)


@pytest.mark.parametrize(("content_type", "hl7_type", "label"), [
    ("hl7v2", "ORU", "ORU"),
    ("hl7v2", "adt", "ADT"),
    ("hl7v2", " RDE ", "RDE"),
    ("hl7v2", "SIU", "other"),
    ("hl7v2", "ACK", "other"),
    ("hl7v2", None, "other"),
    ("hl7v2", "", "other"),
    ("cda", None, "CDA"),
    ("json", "ORU", "JSON"),
])
def test_message_type_is_bucketed(content_type: str, hl7_type: str | None, label: str) -> None:
    assert message_type(content_type, hl7_type) == label


@given(st.text(max_size=40), st.sampled_from(["hl7v2", "cda", "json", "other"]))
def test_no_input_makes_a_message_type_outside_the_set(hl7_type: str, content: str) -> None:
    assert message_type(content, hl7_type) in MESSAGE_TYPES


@pytest.mark.parametrize(("kwargs", "reason"), [
    ({"outcome": "AA"}, None),
    ({"outcome": "CA"}, None),
    ({"outcome": "AR", "unauthorised": True}, "unauthorised"),
    ({"outcome": "AE", "stored": False}, "not_stored"),
    ({"outcome": "AR", "error_code": "205"}, "duplicate_id"),
    ({"outcome": "AE", "error_code": "207",
      "error_text": "internal error while processing the message (KeyError)"}, "internal"),
    ({"outcome": "AR", "error_code": "102", "readable": False}, "unreadable"),
    ({"outcome": "AE", "error_code": "101", "error_text": "PID-3 is required"}, "validation"),
    # the order matters: a refusal is unauthorised even when Kafka was not asked
    ({"outcome": "AR", "unauthorised": True, "stored": False}, "unauthorised"),
])
def test_reject_reason(kwargs: dict[str, object], reason: str | None) -> None:
    assert reject_reason(**kwargs) == reason  # type: ignore[arg-type]
    assert reason is None or reason in REJECT_REASONS


@pytest.mark.parametrize(("status", "reason"), [
    (413, "oversize"), (400, "validation"), (None, "unauthorised"), (401, "unauthorised")])
def test_refusal_reason(status: object, reason: str) -> None:
    assert refusal_reason(status) == reason


def test_registered_facilities_are_named_and_everyone_else_is_unregistered() -> None:
    labels = FacilityLabels({"QSXRMYY", "HHXWSY"})
    assert labels("QSXRMYY") == "QSXRMYY"
    assert labels("EVIL-1") == labels("EVIL-2") == UNREGISTERED
    assert labels(None) == labels("") == UNREGISTERED


def test_an_open_intake_names_a_bounded_number_of_unregistered_facilities() -> None:
    labels = FacilityLabels({"QSXRMYY"}, open_intake=True, limit=3)
    named = {labels(f"F{n}") for n in range(10)}
    assert named == {"F0", "F1", "F2", UNREGISTERED}
    assert labels("F1") == "F1"  # those seen first keep their label
    assert labels("QSXRMYY") == "QSXRMYY"  # registered ones never count against the limit
    assert labels("X" * 65) == UNREGISTERED


@pytest.mark.parametrize(("action", "decided_by", "score", "label"), [
    ("link", "id_card", None, "id_card"),
    ("merge", "health_card", None, "health_card"),
    ("link", "fellegi-sunter", 0.999, "fellegi-sunter"),
    ("link", "fellegi-sunter", None, "new"),
    ("merge", "fellegi-sunter", None, "fellegi-sunter"),
    ("review", "fellegi-sunter", None, "review"),
    ("merge", "facility:QSXRMYY", None, "facility-merge"),
    ("merge", "zhang.reviewer", None, "merge"),
    ("unmerge", "zhang.reviewer", None, "unmerge"),
    ("link", "zhang.reviewer", None, "other"),
])
def test_empi_outcome_never_carries_a_reviewer_id(action: str, decided_by: str,
                                                  score: float | None, label: str) -> None:
    assert empi_outcome(action, decided_by, score) == label
    assert label in EMPI_OUTCOMES


def test_stages() -> None:
    assert [sink_stage(n) for n in ("warehouse", "documents", "webhook")] == [
        "warehouse-sink", "document-sink", "webhook-sink"]
    assert stream_stage("hutong.events.lab-result") == "empi"
    assert stream_stage("hutong.empi.resolve") == "empi"
    assert stream_stage("hutong.alerts.ack") == "alerts"
    assert {sink_stage("warehouse"), stream_stage("x"), "producer", "translate"} <= set(STAGES)


def test_oldest_age_skips_what_is_not_an_aware_time() -> None:
    now = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    times = [now - timedelta(seconds=3), now - timedelta(seconds=7.5), None, "x",
             datetime(2020, 1, 1)]  # naive: not comparable, skipped
    assert oldest_age(times, now) == 7.5
    assert oldest_age([], now) is None
    assert oldest_age([now + timedelta(seconds=2)], now) == 0.0  # a clock ahead is not negative
