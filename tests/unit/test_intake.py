"""Intake decides what is written and what is answered; a stand-in producer records it.

The producer here is a plain recorder, not a Kafka mock: what reaches a real broker
is tested in tests/integration. These tests pin the decisions.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from connectors.facilities import Facility, FacilityRegistry, Peer
from hutong.audit import AuditLog
from hutong.errors import DeliveryError, HL7Error
from hutong.metrics import Metrics
from hutong.ratelimit import KeyedLimiter
from producers.hl7v2.adapter import MAPPERS, Arrival, adapt
from producers.hl7v2.message import Message
from producers.intake import Intake, Receipt
from producers.kafka import OutRecord
from producers.receipts import ReceiptLog
from schemas import wire

NOW = datetime(2026, 11, 20, 1, 30, tzinfo=UTC)
ORU = (
    "MSH|^~\\&|LIS|FAC1|HUTONG|REGION|20261120093000||ORU^R01^ORU_R01|C1|P|2.4\r"
    "PID|1||M1^^^FAC1^MR||测试丙||19800101|F\r"
    "OBR|1|C1P|C1F|BCP^生化^L|||20261120090000\r"
    "OBX|{set_id}|NM|K^钾^L||4.0|mmol/L|3.5-5.5|N|||F\r"
)


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[OutRecord] = []
        self.fail = fail

    async def send(self, records: Sequence[OutRecord]) -> None:
        if self.fail:
            raise DeliveryError("broker unavailable")
        self.sent.extend(records)


def receive(payload: bytes, fail: bool = False) -> tuple[str, str, list[OutRecord]]:
    recorder = Recorder(fail)
    intake = Intake(recorder, Metrics(), clock=lambda: NOW)  # type: ignore[arg-type]
    receipt = asyncio.run(intake.receive(payload, Peer("mllp", "127.0.0.1")))
    msa = Message.parse(receipt.ack.decode()).segment("MSA")
    assert msa is not None
    return receipt.code, msa.get(1), recorder.sent


def test_clean_message_is_aa_after_its_records_were_written() -> None:
    code, msa, sent = receive(ORU.format(set_id=1).encode())
    assert (code, msa) == ("AA", "AA")
    assert [r.topic for r in sent] == ["hutong.raw.hl7v2", "hutong.events.lab-result"]


def test_a_set_id_beyond_an_avro_int_is_ae_102_naming_the_field() -> None:
    code, msa, sent = receive(ORU.format(set_id=99999999999).encode())
    assert (code, msa) == ("AE", "AE")
    letter = wire.decode(sent[0].value)[1]
    assert (sent[0].topic, letter["error_code"]) == ("hutong.dlq", "102")
    assert "OBX-1" in letter["reason"] and "99999999999" not in letter["reason"]


def test_an_event_that_does_not_fit_its_schema_is_ae_207_with_a_dead_letter(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The safety net under the adapters: a mapper bug that yields an event outside its
    schema fails that message (internal error, type only), never the connection."""
    event_type, mapper = MAPPERS[("ORU", "R01")]

    def buggy(*args: Any, **kwargs: Any) -> list[Any]:
        events = mapper(*args, **kwargs)
        events[0]["set_id"] = 2**40  # beyond an Avro int
        return events

    monkeypatch.setitem(MAPPERS, ("ORU", "R01"), (event_type, buggy))
    code, msa, sent = receive(ORU.format(set_id=1).encode())
    assert (code, msa) == ("AE", "AE")
    assert [r.topic for r in sent] == ["hutong.dlq", "hutong.raw.hl7v2"]  # no event
    letter = wire.decode(sent[0].value)[1]
    assert letter["error_code"] == "207"
    assert letter["reason"].startswith("internal error") and "测试丙" not in letter["reason"]


def test_kafka_not_confirming_is_ae_resend_and_never_aa() -> None:
    code, msa, sent = receive(ORU.format(set_id=1).encode(), fail=True)
    assert (code, msa) == ("AE", "AE") and sent == []


@pytest.mark.parametrize("payload", [b"MSH\rxxxxxxxx", b"MSH", b"\x00\xff\xfe", b""])
def test_adapt_never_raises(payload: bytes) -> None:
    adapted = adapt(Arrival(payload, "mllp", NOW))
    assert adapted.code in {"AE", "AR"}
    assert isinstance(adapted.error, HL7Error)


def test_refused_input_is_answered_and_recorded_with_its_head_only() -> None:
    recorder = Recorder()
    intake = Intake(recorder, Metrics(), clock=lambda: NOW)  # type: ignore[arg-type]
    error = HL7Error("frame exceeds the 1024-byte limit", location="MLLP", code="207")
    receipt = asyncio.run(intake.refuse(b"MSH|^~\\&|" + b"x" * 100, Peer("mllp"), error))
    assert receipt.code == "AR"
    letter = wire.decode(recorder.sent[0].value)[1]
    assert letter["location"] == "MLLP" and len(letter["payload"]) == 109


def make_intake(tmp_path: Path, recorder: Recorder, registry: FacilityRegistry | None = None
                ) -> tuple[Intake, AuditLog]:
    audit = AuditLog(tmp_path / "audit")
    intake = Intake(recorder, Metrics(), registry=registry,  # type: ignore[arg-type]
                    receipts=ReceiptLog(":memory:"), audit=audit, clock=lambda: NOW)
    return intake, audit


def acks(receipt: Receipt) -> list[tuple[str, str]]:
    """(MSA-1, MSA-2) of each ACK frame."""
    out = []
    for frame in receipt.acks:
        msa = Message.parse(frame.decode()).segment("MSA")
        assert msa is not None
        out.append((msa.get(1), msa.get(2)))
    return out


def test_enhanced_mode_gets_commit_then_application_ack(tmp_path: Path) -> None:
    recorder = Recorder()
    intake, _ = make_intake(tmp_path, recorder)
    enhanced = ORU.format(set_id=1).replace("|P|2.4\r", "|P|2.4|||AL|AL\r", 1)
    receipt = asyncio.run(intake.receive(enhanced.encode(), Peer("mllp", "127.0.0.1")))
    assert acks(receipt) == [("CA", "C1"), ("AA", "C1")]
    assert [r.topic for r in recorder.sent] == ["hutong.raw.hl7v2", "hutong.events.lab-result"]


def test_enhanced_mode_not_stored_is_commit_error_only(tmp_path: Path) -> None:
    intake, _ = make_intake(tmp_path, Recorder(fail=True))
    enhanced = ORU.format(set_id=1).replace("|P|2.4\r", "|P|2.4|||AL|AL\r", 1)
    receipt = asyncio.run(intake.receive(enhanced.encode(), Peer("mllp", "127.0.0.1")))
    assert acks(receipt) == [("CE", "C1")] and not receipt.stored


def test_a_resend_is_acked_again_and_not_stored_twice(tmp_path: Path) -> None:
    recorder = Recorder()
    intake, _ = make_intake(tmp_path, recorder)
    first = asyncio.run(intake.receive(ORU.format(set_id=1).encode(), Peer("mllp", "10.0.0.1")))
    sent = len(recorder.sent)
    rebuilt = ORU.format(set_id=1).replace("20261120093000", "20261120093500", 1)  # new MSH-7
    again = asyncio.run(intake.receive(rebuilt.encode(), Peer("mllp", "10.0.0.2")))
    assert (again.code, again.duplicate, again.event_ids) == ("AA", True, first.event_ids)
    assert acks(again) == [("AA", "C1")] and len(recorder.sent) == sent


def test_control_id_reused_for_other_content_is_refused_and_dead_lettered(
        tmp_path: Path) -> None:
    recorder = Recorder()
    intake, _ = make_intake(tmp_path, recorder)
    asyncio.run(intake.receive(ORU.format(set_id=1).encode(), Peer("mllp", "10.0.0.1")))
    recorder.sent.clear()
    other = ORU.format(set_id=1).replace("|4.0|", "|6.9|")
    receipt = asyncio.run(intake.receive(other.encode(), Peer("mllp", "10.0.0.1")))
    assert receipt.code == "AR" and acks(receipt) == [("AR", "C1")]
    letter = wire.decode(recorder.sent[0].value)[1]
    assert (letter["error_code"], letter["location"]) == ("205", "MSH-10")
    assert b"ERR|" in receipt.ack and b"205" in receipt.ack


def test_a_corrected_message_may_reuse_the_control_id_of_one_refused_for_content(
        tmp_path: Path) -> None:
    intake, _ = make_intake(tmp_path, Recorder())
    bad = ORU.format(set_id=1).replace("|4.0|", "|four|")
    assert asyncio.run(intake.receive(bad.encode(), Peer("mllp", "10.0.0.1"))).code == "AE"
    fixed = asyncio.run(intake.receive(ORU.format(set_id=1).encode(), Peer("mllp", "10.0.0.1")))
    assert fixed.code == "AA" and not fixed.duplicate


def test_an_unregistered_facility_gets_ar_and_an_audit_record_and_nothing_is_stored(
        tmp_path: Path) -> None:
    recorder = Recorder()
    registry = FacilityRegistry([Facility(id="OTHER", mllp_sources=["10.0.0.0/8"])])
    intake, audit = make_intake(tmp_path, recorder, registry)
    receipt = asyncio.run(intake.receive(ORU.format(set_id=1).encode(), Peer("mllp", "10.0.0.1")))
    assert receipt.unauthorised and acks(receipt) == [("AR", "C1")]
    assert recorder.sent == []
    [entry] = list(audit.records())
    assert (entry["action"], entry["facility"], entry["address"]) == (
        "intake.refused", "FAC1", "10.0.0.1")
    assert "测试" not in json.dumps(entry, ensure_ascii=False)  # no message content


def test_garbage_from_an_unknown_address_is_only_audited(tmp_path: Path) -> None:
    recorder = Recorder()
    registry = FacilityRegistry([Facility(id="FAC1", mllp_sources=["10.0.0.0/8"])])
    intake, audit = make_intake(tmp_path, recorder, registry)
    receipt = asyncio.run(intake.receive(b"\x00garbage", Peer("mllp", "192.0.2.9")))
    assert receipt.code == "AR" and recorder.sent == [] and len(list(audit.records())) == 1
    known = asyncio.run(intake.receive(b"\x00garbage", Peer("mllp", "10.1.1.1")))
    assert known.code == "AR" and recorder.sent[0].topic == "hutong.dlq"


def test_a_commit_ack_from_the_sender_is_swallowed(tmp_path: Path) -> None:
    recorder = Recorder()
    intake, _ = make_intake(tmp_path, recorder)
    ack = "MSH|^~\\&|LIS|FAC1|HUTONG|R|20261120||ACK|A9|P|2.4\rMSA|CA|ACK0000000002\r"
    receipt = asyncio.run(intake.receive(ack.encode(), Peer("mllp", "10.0.0.1")))
    assert receipt.acks == () and recorder.sent == []


def test_an_ack_from_an_unknown_facility_is_refused_audited_and_not_answered(
        tmp_path: Path) -> None:
    recorder = Recorder()
    registry = FacilityRegistry([Facility(id="OTHER", mllp_sources=["10.0.0.0/8"])])
    intake, audit = make_intake(tmp_path, recorder, registry)
    ack = "MSH|^~\\&|LIS|FAC1|HUTONG|R|20261120||ACK|A9|P|2.4\rMSA|CA|ACK0000000002\r"
    receipt = asyncio.run(intake.receive(ack.encode(), Peer("mllp", "10.0.0.1")))
    assert receipt.unauthorised and receipt.acks == () and recorder.sent == []
    assert [e["action"] for e in audit.records()] == ["intake.refused"]


def test_refusals_from_one_address_are_audited_at_a_bounded_rate(tmp_path: Path) -> None:
    registry = FacilityRegistry([Facility(id="OTHER", mllp_sources=["10.0.0.0/8"])])
    clock = [0.0]
    metrics = Metrics()
    audit = AuditLog(tmp_path / "audit")
    intake = Intake(Recorder(), metrics, registry=registry, audit=audit,  # type: ignore[arg-type]
                    audit_limit=KeyedLimiter(rate=1.0, burst=3, clock=lambda: clock[0]),
                    clock=lambda: NOW)

    async def flood(address: str, times: int) -> None:
        for _ in range(times):
            assert (await intake.receive(b"\x00garbage", Peer("mllp", address))).code == "AR"

    asyncio.run(flood("192.0.2.9", 50))  # every one answered, three recorded
    asyncio.run(flood("192.0.2.10", 1))  # another address is not held back
    clock[0] = 1.0
    asyncio.run(flood("192.0.2.9", 1))  # a second later: recorded, counting what was left out
    entries = list(audit.records())
    assert [e["address"] for e in entries] == ["192.0.2.9"] * 3 + ["192.0.2.10", "192.0.2.9"]
    assert entries[-1]["left_out"] == 47
    assert metrics.audit_suppressed.labels("intake.refused")._value.get() == 47


def test_a_stranger_claiming_a_facility_is_not_counted_against_it(tmp_path: Path) -> None:
    registry = FacilityRegistry([Facility(id="FAC1", mllp_sources=["10.0.0.0/8"])])
    metrics = Metrics()
    intake = Intake(Recorder(), metrics, registry=registry,  # type: ignore[arg-type]
                    audit=AuditLog(tmp_path / "audit"), clock=lambda: NOW)
    claim = "MSH|^~\\&|LIS|FAC1|HUTONG|R|20261120||ORU^R01|X1|P|2.4\rPID|1||P1\r"
    receipt = asyncio.run(intake.receive(claim.encode(), Peer("mllp", "203.0.113.66")))
    assert receipt.code == "AR"
    exposition = generate_latest(metrics.registry).decode()
    assert 'facility="FAC1",message_type="ORU",outcome="AR"} 1.0' not in exposition
    assert 'facility="unregistered",message_type="ORU",outcome="AR"} 1.0' in exposition
