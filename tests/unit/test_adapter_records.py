"""From received bytes to the records written: outcomes, keys, headers and schema ids."""

from __future__ import annotations

import struct
from datetime import UTC, datetime

import pytest

from producers.hl7v2.adapter import Arrival, adapt
from producers.records import dead_letter_record, event_key, records_for
from schemas import catalog, wire
from schemas.catalog import TOPICS, subject_for
from schemas.registry import IdMap

NOW = datetime(2026, 11, 20, 1, 30, tzinfo=UTC)
ORU = (
    "MSH|^~\\&|LIS|FAC1|HUTONG|REGION|20261120093000||ORU^R01^ORU_R01|C1|P|2.4\r"
    "PID|1||M1^^^FAC1^MR||测试乙||19800101|F\r"
    "OBR|1|C1P|C1F|BCP^生化^L|||20261120090000\r"
    "OBX|1|NM|K^钾^L||{value}|mmol/L|3.5-5.5|N|||F\r"
    "OBX|2|NM|NA^钠^L||140|mmol/L|137-147|N|||F\r"
)


def arrival(text: str) -> Arrival:
    return Arrival(text.encode(), "mllp", NOW, "127.0.0.1:5000")


def schema_id(value: bytes) -> int:
    return int(struct.unpack(">bI", value[:5])[1])


def test_clean_oru_becomes_envelope_and_one_event_per_obx() -> None:
    adapted = adapt(arrival(ORU.format(value="4.1")))
    assert (adapted.code, adapted.error, adapted.key) == ("AA", None, "FAC1|C1")
    records = records_for(adapted)
    assert [r.topic for r in records] == ["hutong.raw.hl7v2", "hutong.events.lab-result",
                                          "hutong.events.lab-result"]
    assert records[0].key == b"FAC1|C1"
    assert {r.key for r in records[1:]} == {b"FAC1|M1"}
    assert event_key(adapted.events[0]) == b"FAC1|M1"
    _, envelope = wire.decode(records[0].value)
    assert envelope["payload"] == ORU.format(value="4.1").encode()
    assert len({e["event_id"] for e in adapted.events}) == 2
    assert adapt(arrival(ORU.format(value="4.1"))).events[0]["event_id"] == \
        adapted.events[0]["event_id"]  # deterministic: a resend collapses downstream


def test_content_error_is_ae_with_dead_letter_and_raw_envelope() -> None:
    adapted = adapt(arrival(ORU.format(value="abc")))
    assert adapted.code == "AE"
    assert adapted.error is not None and adapted.error.location == "OBX[1]-5"
    records = dead_letter_record(adapted)
    assert [r.topic for r in records] == ["hutong.dlq", "hutong.raw.hl7v2"]
    headers = dict(records[0].headers)
    assert headers["hutong.stage"] == b"producer"
    assert headers["hutong.location"] == b"OBX[1]-5"
    assert b"abc" not in headers["hutong.reason"]


@pytest.mark.parametrize(("text", "location"), [
    ("garbage", "MSH"),
    ("MSH|^~\\&|LIS||HUTONG|REGION|20261120093000||ORU^R01|C1|P|2.4\r", "MSH-4"),
    ("MSH|^~\\&|LIS|FAC1|HUTONG|REGION|20261120093000||ORU^R01||P|2.4\r", "MSH-10"),
    ("MSH|^~\\&|LIS|FAC1|HUTONG|REGION|20261120093000||ZZZ^Z01|C1|P|2.4\r", "MSH-9"),
])
def test_rejections_are_ar_with_a_location(text: str, location: str) -> None:
    adapted = adapt(arrival(text))
    assert adapted.code == "AR"
    assert adapted.error is not None
    assert (adapted.error.location or "").startswith(location)
    assert dead_letter_record(adapted)[0].topic == "hutong.dlq"


def test_external_registry_ids_are_used_when_given() -> None:
    ids = IdMap({subject_for(topic): 100 + n for n, topic in enumerate(sorted(TOPICS))})
    adapted = adapt(arrival(ORU.format(value="4.1")))
    embedded = records_for(adapted)
    external = records_for(adapted, ids)
    assert schema_id(embedded[1].value) == catalog.schema("lab-result").schema_id
    assert schema_id(external[1].value) == ids.for_topic("hutong.events.lab-result").schema_id
    assert external[1].value[5:] == embedded[1].value[5:]  # same body, other id
    assert wire.decode(external[1].value, ids.by_id)[1] == adapted.events[0]
