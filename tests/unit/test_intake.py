"""Intake decides what is written and what is answered; a stand-in producer records it.

The producer here is a plain recorder, not a Kafka mock: what reaches a real broker
is tested in tests/integration. These tests pin the decisions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from hutong.errors import DeliveryError, HL7Error
from hutong.metrics import Metrics
from producers.hl7v2.adapter import Arrival, adapt
from producers.hl7v2.message import Message
from producers.intake import Intake
from producers.kafka import OutRecord
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
    receipt = asyncio.run(intake.receive(payload, "mllp", "127.0.0.1:1"))
    msa = Message.parse(receipt.ack.decode()).segment("MSA")
    assert msa is not None
    return receipt.code, msa.get(1), recorder.sent


def test_clean_message_is_aa_after_its_records_were_written() -> None:
    code, msa, sent = receive(ORU.format(set_id=1).encode())
    assert (code, msa) == ("AA", "AA")
    assert [r.topic for r in sent] == ["hutong.raw.hl7v2", "hutong.events.lab-result"]


def test_event_that_does_not_fit_its_schema_is_ae_with_a_dead_letter() -> None:
    code, msa, sent = receive(ORU.format(set_id=99999999999).encode())  # OBX-1 beyond Avro int
    assert (code, msa) == ("AE", "AE")
    assert sent[0].topic == "hutong.dlq"
    letter = wire.decode(sent[0].value)[1]
    assert letter["error_code"] == "207" and "99999999999" not in letter["reason"]


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
    receipt = asyncio.run(intake.refuse(b"MSH|^~\\&|" + b"x" * 100, "mllp", None, error))
    assert receipt.code == "AR"
    letter = wire.decode(recorder.sent[0].value)[1]
    assert letter["location"] == "MLLP" and len(letter["payload"]) == 109
