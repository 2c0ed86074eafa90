"""Which dead letters may be retried, and how their payload is told apart (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from hutong.monitor.retry import Retried, RetryLedger, content_kind, refusal


def letter(**overrides: Any) -> dict[str, Any]:
    return {"dead_letter_id": "dl-1", "stage": "producer", "facility_id": "QSXRMYY",
            "location": "MSH-9", "payload_size": 412, "dlq_partition": 0, "dlq_offset": 17,
            **overrides}


def test_a_message_a_facility_sent_may_be_retried() -> None:
    assert refusal(letter()) is None
    assert refusal(letter(stage="mllp")) is None
    assert refusal(letter(dlq_partition=2, dlq_offset=0)) is None


@pytest.mark.parametrize(("overrides", "because"), [
    ({"stage": "stream"}, "stream stage"),
    ({"stage": "sink"}, "sink stage"),
    ({"location": "MLLP"}, "first bytes"),
    ({"payload_size": 0}, "holds no message"),
    ({"facility_id": None}, "names no facility"),
    ({"dlq_partition": None}, "migration 0010"),
    ({"dlq_offset": None}, "migration 0010"),
])
def test_what_rules_a_retry_out(overrides: dict[str, Any], because: str) -> None:
    reason = refusal(letter(**overrides))
    assert reason is not None and because in reason


@pytest.mark.parametrize(("payload", "kind"), [
    (b"MSH|^~\\&|LIS|F|||20261204||ORU^R01|1|P|2.4\r", "hl7v2"),
    (b"\xef\xbb\xbf<?xml version='1.0'?><ClinicalDocument/>", "cda"),
    (b"  <ClinicalDocument/>", "cda"),
    (b'{"events": []}', "json"),
    (b'\n[{"event_type": "lab-result"}]', "json"),
    (b"\x00\x01garbage", "hl7v2"),  # the intake says what is wrong with it
])
def test_content_kind(payload: bytes, kind: str) -> None:
    assert content_kind(payload) == kind


def retried(letter_id: str, outcome: str = "AA") -> Retried:
    return Retried(letter_id, outcome, True, False, (), None, None, None, "ops", "now")


def test_the_ledger_keeps_the_last_retry_of_the_latest_letters() -> None:
    ledger = RetryLedger(size=2)
    ledger.put(retried("a", "AE"))
    ledger.put(retried("b"))
    ledger.put(retried("a"))  # a retried again: now the newest
    ledger.put(retried("c"))
    assert ledger.get("b") is None
    assert [ledger.get(x).outcome for x in ("a", "c")] == ["AA", "AA"]  # type: ignore[union-attr]


def test_letters_whose_last_retry_became_events_are_accepted() -> None:
    ledger = RetryLedger()
    ledger.put(retried("a"))
    ledger.put(retried("b", "AE"))
    ledger.put(retried("c", "AR"))
    ledger.put(retried("d", "AE"))
    ledger.put(retried("d"))  # failed once, then accepted
    assert ledger.accepted() == {"a", "d"}
    ledger.put(retried("a", "AE"))  # only the last retry counts
    assert ledger.accepted() == {"d"}
