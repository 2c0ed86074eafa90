"""ORM^O01 and OML^O21 to order events: a v2.4 HIS and a v2.5.1 county hospital.

Every person, number and facility below is fictional.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from hutong.errors import ValidationError
from producers.hl7v2.adapter import MAPPERS, Arrival, adapt
from producers.hl7v2.message import Message
from producers.hl7v2.orders import ORDER_KEYS, map_order
from producers.hl7v2.types import DEFAULT_TZ
from producers.ids import event_id
from producers.records import records_for
from schemas import catalog, wire

RECEIVED = datetime(2024, 1, 15, 1, 31, tzinfo=UTC)
ID_CARD = "11010519491231002X"

#: ADR 0001 and schemas/order.avsc, written out again so a change to either side is noticed.
ADR_HEADER = ["event_id", "event_type", "facility_id", "source_system", "message_control_id",
              "source_patient_id", "empi_id", "occurred_at", "received_at", "patient",
              "quality_warnings", "map_version", "codes", "unmapped"]
ORDER_FIELDS = ["order_control", "placer_order_number", "filler_order_number",
                "placer_group_number", "order_status", "item_code", "item_name", "item_system",
                "diagnostic_service", "priority", "specimen_type", "clinical_info", "ordered_at",
                "ordering_provider_id", "ordering_provider_name", "ordering_department",
                "visit_number"]
#: Set by the stream worker (streams.practitioners); None as the adapter makes them.
LINK_FIELDS = ["practitioner_id", "practitioner_status"]


def seg(name: str, fields: dict[int, str]) -> str:
    """A segment with ``fields`` at their HL7 numbers (no counting of bars by hand)."""
    return "|".join([name, *(fields.get(n, "") for n in range(1, max(fields) + 1))])


#: An outpatient HIS sends a lab test and an ultrasound exam to the LIS and RIS (v2.4).
V24_ORM = "\r".join([
    "MSH|^~\\&|HIS|RMYY^人民医院|LIS|JYK|20240115093000||ORM^O01^ORM_O01|ORM0001|P|2.4"
    "|||AL|NE|CHN|UNICODE UTF-8",
    seg("PID", {1: "1", 3: f"P000123^^^RMYY^PI~{ID_CARD}^^^GA^SFZH", 5: "张三", 7: "19491231",
                8: "M"}),
    seg("PV1", {1: "1", 2: "O", 3: "MZ05^^^^^^^^内分泌科门诊", 19: "MZ20240115001"}),
    seg("ORC", {1: "NW", 2: "ORD2001", 4: "GRP01", 5: "IP", 7: "^^^^^R",
                9: "20240115091500", 12: "D1001^李^明", 17: "NFMK^内分泌科"}),
    seg("OBR", {1: "1", 2: "ORD2001", 4: "HBA1C^糖化血红蛋白^L", 13: "口渴多饮三月",
                15: "BLD&全血", 24: "LAB", 27: "^^^^^S"}),
    seg("ORC", {1: "NW", 2: "ORD2002", 3: "US2002", 5: "IP", 9: "20240115091600",
                12: "D1001^李^明"}),
    seg("OBR", {1: "2", 4: "US001^腹部彩超^RIS", 24: "US", 27: "^^^^^S"}),
]) + "\r"

#: An inpatient order system sends lab orders with TQ1 and SPM (v2.5.1).
V251_OML = "\r".join([
    "MSH|^~\\&|HIS^2.16.156.10011.1.1^ISO|XYY^县医院|LIS|XYY|20240520143000+0800||"
    "OML^O21^OML_O21|OML0001|P|2.5.1|||NE|AL||UNICODE UTF-8",
    seg("PID", {1: "1", 3: "Z0001^^^XYY^MR~JK1234567890^^^WJW^JKK", 5: "李^四",
                7: "19700202", 8: "M"}),
    seg("PV1", {1: "1", 2: "I", 3: "NK01^301^02^XYY", 10: "NK^内科", 19: "ZY2024052001"}),
    seg("ORC", {1: "NW", 2: "P7001", 5: "SC", 9: "20240520140000+0800", 12: "D2002^赵^敏",
                17: "NK^内科"}),
    seg("TQ1", {1: "1", 7: "20240520140000+0800", 9: "S^STAT^HL70485"}),
    seg("OBR", {1: "1", 2: "P7001", 4: "LFT^肝功能^L", 16: "D9999^钱^七", 24: "LAB"}),
    seg("SPM", {1: "1", 4: "SER^血清^HL70487"}),
    seg("ORC", {1: "NW", 2: "P7002", 5: "SC", 9: "20240520140100+0800"}),
    seg("OBR", {1: "2", 2: "P7002", 4: "CBC^血常规^L", 15: "&全血", 16: "D2003^孙^丽",
                24: "LAB"}),
]) + "\r"


def run(text: str, facility: str = "RMYY") -> list[dict[str, Any]]:
    return map_order(Message.parse(text), facility_id=facility, received_at=RECEIVED)


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=DEFAULT_TZ)


def encodes(event: dict[str, Any]) -> None:
    """The event fits its schema: the Confluent wire encoder accepts it."""
    entry = catalog.for_topic(f"hutong.events.{event['event_type']}")
    assert entry.name == "order"
    assert wire.encode(entry, event)[:1] == b"\x00"


def test_keys_are_the_adr_header_then_the_schema_fields() -> None:
    schema_fields = [f["name"] for f in catalog.schema("order").parsed["fields"]]
    assert list(ORDER_KEYS) == ADR_HEADER + ORDER_FIELDS + LINK_FIELDS == schema_fields
    for text in (V24_ORM, V251_OML):
        for event in run(text):
            assert list(event) == list(ORDER_KEYS)
            encodes(event)


def test_v24_orm_lab_order() -> None:
    lab, _ = run(V24_ORM)
    assert {k: lab[k] for k in ADR_HEADER if k != "patient"} == {
        "event_id": event_id("RMYY", "ORM0001", "ORC1"),
        "event_type": "order",
        "facility_id": "RMYY",
        "source_system": "HIS",
        "message_control_id": "ORM0001",
        "source_patient_id": "P000123",
        "empi_id": None,
        "occurred_at": local(2024, 1, 15, 9, 15),
        "received_at": RECEIVED,
        "quality_warnings": [],
        "map_version": None,
        "codes": [],
        "unmapped": [],
    }
    assert {k: lab[k] for k in ORDER_FIELDS} == {
        "order_control": "NW",
        "placer_order_number": "ORD2001",
        "filler_order_number": None,
        "placer_group_number": "GRP01",
        "order_status": "IP",
        "item_code": "HBA1C",
        "item_name": "糖化血红蛋白",
        "item_system": "L",
        "diagnostic_service": "LAB",
        "priority": "R",  # ORC-7.6 before OBR-27.6
        "specimen_type": "BLD",
        "clinical_info": "口渴多饮三月",
        "ordered_at": local(2024, 1, 15, 9, 15),
        "ordering_provider_id": "D1001",
        "ordering_provider_name": "李明",
        "ordering_department": "NFMK",
        "visit_number": "MZ20240115001",
    }
    patient = lab["patient"]
    assert (patient["name"], patient["id_card_number"], patient["birth_date"]) == (
        "张三", ID_CARD, date(1949, 12, 31))


def test_v24_orm_exam_order_falls_back_to_obr_and_pv1() -> None:
    exam = run(V24_ORM)[1]
    assert {k: exam[k] for k in ORDER_FIELDS} == {
        "order_control": "NW",
        "placer_order_number": "ORD2002",
        "filler_order_number": "US2002",
        "placer_group_number": None,
        "order_status": "IP",
        "item_code": "US001",
        "item_name": "腹部彩超",
        "item_system": "RIS",
        "diagnostic_service": "US",
        "priority": "S",  # OBR-27.6 when ORC-7.6 is empty
        "specimen_type": None,
        "clinical_info": None,
        "ordered_at": local(2024, 1, 15, 9, 16),
        "ordering_provider_id": "D1001",
        "ordering_provider_name": "李明",
        "ordering_department": "MZ05",  # PV1-3.1 when ORC-17 is empty
        "visit_number": "MZ20240115001",
    }
    assert exam["event_id"] == event_id("RMYY", "ORM0001", "ORC2")


def test_v251_oml_priority_from_tq1_and_specimen_from_spm() -> None:
    liver, blood = run(V251_OML, "XYY")
    assert {k: liver[k] for k in ORDER_FIELDS} == {
        "order_control": "NW",
        "placer_order_number": "P7001",
        "filler_order_number": None,
        "placer_group_number": None,
        "order_status": "SC",
        "item_code": "LFT",
        "item_name": "肝功能",
        "item_system": "L",
        "diagnostic_service": "LAB",
        "priority": "S",
        "specimen_type": "SER",
        "clinical_info": None,
        "ordered_at": local(2024, 5, 20, 14, 0),
        "ordering_provider_id": "D2002",  # ORC-12 before OBR-16
        "ordering_provider_name": "赵敏",
        "ordering_department": "NK",
        "visit_number": "ZY2024052001",
    }
    assert (liver["source_system"], liver["occurred_at"]) == ("HIS", local(2024, 5, 20, 14, 0))
    assert liver["patient"]["health_card_number"] == "JK1234567890"
    # no TQ1, ORC-7 or OBR-27: no priority; OBR-15 text; OBR-16 when ORC-12 is empty
    assert (blood["priority"], blood["specimen_type"]) == (None, "全血")
    assert (blood["ordering_provider_id"], blood["ordering_provider_name"]) == ("D2003", "孙丽")
    assert blood["ordering_department"] == "NK01"
    assert [e["event_id"] for e in (liver, blood)] == [
        event_id("XYY", "OML0001", "ORC1"), event_id("XYY", "OML0001", "ORC2")]


def test_cancel_and_ids_are_deterministic() -> None:
    cancel = V24_ORM.replace("ORC|NW|ORD2001", "ORC|CA|ORD2001")
    assert run(cancel)[0]["order_control"] == "CA"
    assert [e["event_id"] for e in run(V24_ORM)] == [e["event_id"] for e in run(V24_ORM)]


def test_each_patient_keeps_its_own_visit() -> None:
    second = "\r".join([
        seg("PID", {1: "2", 3: "P000999^^^RMYY^PI", 5: "王五", 7: "19800101", 8: "F"}),
        seg("PV1", {1: "1", 2: "O", 3: "MZ09", 19: "MZ20240115099"}),
        seg("ORC", {1: "NW", 2: "ORD2003"}),
        seg("OBR", {1: "1", 4: "GLU^血糖^L"}),
    ])
    events = run(V24_ORM + second)
    assert [(e["source_patient_id"], e["visit_number"], e["ordering_department"])
            for e in events] == [("P000123", "MZ20240115001", "NFMK"),
                                 ("P000123", "MZ20240115001", "MZ05"),
                                 ("P000999", "MZ20240115099", "MZ09")]
    assert events[2]["event_id"] == event_id("RMYY", "ORM0001", "ORC3")


def test_patient_warnings_reach_every_order() -> None:
    text = V24_ORM.replace(ID_CARD, "110105194912310021")
    for event in run(text):
        assert event["quality_warnings"] == [
            "PID[1]-3[2]: ID card check character does not match"]


def _without(text: str, prefix: str) -> str:
    """``text`` without the segments that start with ``prefix``."""
    return "\r".join(s for s in text.split("\r") if not s.startswith(prefix))


ERRORS = [
    ("no PID", _without(V24_ORM, "PID"), "100", "PID"),
    ("no ORC", _without(V24_ORM, "ORC"), "100", "ORC"),
    ("ORC before PID", "\r".join(V24_ORM.split("\r")[i] for i in (0, 3, 4, 1, 2, 5, 6)),
     "100", "ORC[1]"),
    ("ORC without OBR", _without(V24_ORM, "OBR|2|"), "100", "ORC[2]"),
    ("two OBR in one group", _without(V24_ORM, "ORC|NW|ORD2002"), "100", "OBR[2]"),
    ("empty ORC-1", V24_ORM.replace("ORC|NW|ORD2002", "ORC||ORD2002"), "101", "ORC[2]-1"),
    ("empty OBR-4", V24_ORM.replace("HBA1C^糖化", "^糖化"), "101", "OBR[1]-4"),
    ("bad ORC-9", V24_ORM.replace("20240115091600", "2024-01-15 09:16"), "102", "ORC[2]-9"),
    ("empty PID-3", V24_ORM.replace(f"P000123^^^RMYY^PI~{ID_CARD}^^^GA^SFZH", ""), "101",
     "PID[1]-3"),
    ("no control id", V24_ORM.replace("|ORM0001|", "||"), "101", "MSH-10"),
]


@pytest.mark.parametrize(("case", "text", "code", "location"), ERRORS, ids=[e[0] for e in ERRORS])
def test_errors_name_the_place_and_never_the_value(
        case: str, text: str, code: str, location: str) -> None:
    with pytest.raises(ValidationError) as caught:
        run(text)
    assert (caught.value.code, caught.value.location) == (code, location), case
    for value in ("张三", ID_CARD, "糖化血红蛋白", "2024-01-15 09:16"):
        assert value not in str(caught.value)


def test_naive_received_at_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone aware"):
        map_order(Message.parse(V24_ORM), facility_id="RMYY", received_at=datetime(2024, 1, 1))


def test_registered_for_orm_and_oml() -> None:
    assert MAPPERS[("ORM", "O01")] == ("order", map_order)
    assert MAPPERS[("OML", "O21")] == ("order", map_order)


@pytest.mark.parametrize("text", [V24_ORM, V251_OML])
def test_adapter_end_to_end(text: str) -> None:
    adapted = adapt(Arrival(text.encode(), "mllp", RECEIVED, "127.0.0.1:5000"))
    assert (adapted.code, adapted.error, adapted.event_type) == ("AA", None, "order")
    assert [e["event_type"] for e in adapted.events] == ["order", "order"]
    assert [r.topic for r in records_for(adapted)] == [
        "hutong.raw.hl7v2", "hutong.events.order", "hutong.events.order"]


def test_adapter_content_error_is_ae() -> None:
    text = V24_ORM.replace("HBA1C^糖化", "^糖化")
    adapted = adapt(Arrival(text.encode(), "mllp", RECEIVED))
    assert (adapted.code, adapted.events) == ("AE", [])
    assert adapted.error is not None and adapted.error.location == "OBR[1]-4"
