"""RDE^O11 and RDS^O13 to medication events: a v2.4 outpatient HIS, a v2.5.1 ward pharmacy.

Every person, number and facility below is fictional.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from hutong.errors import ValidationError
from producers.hl7v2.adapter import MAPPERS, Arrival, adapt
from producers.hl7v2.message import Message
from producers.hl7v2.pharmacy import MEDICATION_KEYS, duration_days, map_medication
from producers.hl7v2.types import DEFAULT_TZ
from producers.ids import event_id
from producers.records import records_for
from schemas import catalog, wire

RECEIVED = datetime(2024, 1, 15, 2, 5, tzinfo=UTC)
ID_CARD = "11010519491231002X"

#: ADR 0001 and schemas/medication.avsc, written out again so a change to either is noticed.
ADR_HEADER = ["event_id", "event_type", "facility_id", "source_system", "message_control_id",
              "source_patient_id", "empi_id", "occurred_at", "received_at", "patient",
              "quality_warnings", "map_version", "codes", "unmapped"]
MEDICATION_FIELDS = ["action", "order_control", "placer_order_number", "filler_order_number",
                     "prescription_number", "drug_code", "drug_name", "drug_system", "dose",
                     "dose_unit", "dosage_form", "route", "frequency", "duration",
                     "duration_days", "quantity", "quantity_unit", "prescribed_at",
                     "dispensed_at", "prescriber_id", "prescriber_name", "department",
                     "visit_number"]
#: Set by the stream worker (streams.practitioners); None as the adapter makes them.
LINK_FIELDS = ["practitioner_id", "practitioner_status"]


def seg(name: str, fields: dict[int, str]) -> str:
    """A segment with ``fields`` at their HL7 numbers (no counting of bars by hand)."""
    return "|".join([name, *(fields.get(n, "") for n in range(1, max(fields) + 1))])


def orc(control: str, placer: str, more: dict[int, str]) -> str:
    """An outpatient prescription's ORC: prescriber 李明 of 呼吸内科 at 09:55."""
    return seg("ORC", {1: control, 2: placer, 5: "IP", 9: "20240115095500",
                       12: "D1001^李^明", 17: "HXK^呼吸内科", **more})


#: An outpatient prescription of two drugs, timing in RXE-1 (v2.4).
V24_RDE = "\r".join([
    "MSH|^~\\&|HIS|RMYY^人民医院|PHIS|YJK|20240115100000||RDE^O11^RDE_O11|RDE0001|P|2.4"
    "|||AL|NE|CHN|UNICODE UTF-8",
    seg("PID", {1: "1", 3: f"P000123^^^RMYY^PI~{ID_CARD}^^^GA^SFZH", 5: "张三", 7: "19491231",
                8: "M"}),
    seg("PV1", {1: "1", 2: "O", 3: "MZ03^^^^^^^^呼吸科门诊", 19: "MZ20240115002"}),
    orc("NW", "RX1001", {3: "YF1001"}),
    seg("RXE", {1: "1^TID^D7", 2: "86900234000012^阿莫西林胶囊^YPBM", 3: "0.5", 5: "g^克",
                6: "CAP^胶囊剂", 10: "24", 11: "粒", 15: "CF20240115001"}),
    seg("RXR", {1: "PO^口服"}),
    orc("NW", "RX1002", {17: ""}),
    seg("RXE", {1: "^BID^7天", 2: "86901234000025^复方甘草片^YPBM", 3: "2", 5: "片",
                10: "36", 11: "片", 15: "CF20240115001"}),
    seg("RXR", {1: "^口服"}),
]) + "\r"

V251_HEAD = [
    "MSH|^~\\&|HIS^2.16.156.10011.1.1^ISO|XYY^县医院|PHIS|XYY|20240520150000+0800||"
    "{type}|{control}|P|2.5.1|||NE|AL||UNICODE UTF-8",
    seg("PID", {1: "1", 3: "Z0001^^^XYY^MR~JK1234567890^^^WJW^JKK", 5: "李^四",
                7: "19700202", 8: "M"}),
    seg("PV1", {1: "1", 2: "I", 3: "NK01^301^02^XYY", 10: "NK^内科", 19: "ZY2024052001"}),
]
V251_ORDER = [
    seg("ORC", {1: "NW", 2: "RX7001", 5: "IP", 9: "20240520143000+0800", 12: "D2002^赵^敏"}),
    seg("TQ1", {1: "1", 3: "QD^每日一次^HL70335", 6: "14^d", 7: "20240520+0800"}),
    seg("RXE", {2: "86900000000031^二甲双胍片^YPBM", 3: "0.5", 5: "g", 6: "TAB^片剂", 10: "28",
                11: "片", 15: "CF7001"}),
    seg("TQ1", {1: "1", 3: "BID&每日两次&HL70335", 6: "7^天", 7: "20240520+0800"}),
    seg("RXR", {1: "PO^口服"}),
]

#: A ward's pharmacy-encoded order: the RXE's own TQ1 after it (v2.5.1).
V251_RDE = "\r".join([
    *V251_HEAD, *V251_ORDER,
]).format(type="RDE^O11^RDE_O11", control="RDE0002") + "\r"

#: The ward pharmacy dispenses the order above, then a drug with RXD alone (v2.5.1).
V251_RDS = "\r".join([
    *V251_HEAD, *V251_ORDER,
    seg("RXD", {1: "1", 2: "86900000000031^盐酸二甲双胍片^YPBM", 3: "20240520155500+0800",
                4: "28", 5: "片", 6: "TAB^片剂", 7: "FY20240520001"}),
    seg("RXR", {1: "PO"}),
    seg("ORC", {1: "RE", 2: "RX7002", 3: "FY7002"}),
    seg("RXD", {1: "1", 2: "86900234000012^阿莫西林胶囊^YPBM", 3: "20240520155600+0800",
                4: "24", 5: "粒^粒"}),
]).format(type="RDS^O13^RDS_O13", control="RDS0001") + "\r"


def run(text: str, facility: str = "RMYY") -> list[dict[str, Any]]:
    return map_medication(Message.parse(text), facility_id=facility, received_at=RECEIVED)


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=DEFAULT_TZ)


def encodes(event: dict[str, Any]) -> None:
    """The event fits its schema: the Confluent wire encoder accepts it."""
    entry = catalog.for_topic(f"hutong.events.{event['event_type']}")
    assert entry.name == "medication"
    assert wire.encode(entry, event)[:1] == b"\x00"


def test_keys_are_the_adr_header_then_the_schema_fields() -> None:
    schema_fields = [f["name"] for f in catalog.schema("medication").parsed["fields"]]
    assert list(MEDICATION_KEYS) == ADR_HEADER + MEDICATION_FIELDS + LINK_FIELDS == schema_fields
    for text in (V24_RDE, V251_RDE, V251_RDS):
        for event in run(text):
            assert list(event) == list(MEDICATION_KEYS)
            encodes(event)


def test_v24_prescription_with_timing_in_rxe1() -> None:
    amoxicillin, _ = run(V24_RDE)
    assert {k: amoxicillin[k] for k in ADR_HEADER if k != "patient"} == {
        "event_id": event_id("RMYY", "RDE0001", "ORC1"),
        "event_type": "medication",
        "facility_id": "RMYY",
        "source_system": "HIS",
        "message_control_id": "RDE0001",
        "source_patient_id": "P000123",
        "empi_id": None,
        "occurred_at": local(2024, 1, 15, 9, 55),
        "received_at": RECEIVED,
        "quality_warnings": [],
        "map_version": None,
        "codes": [],
        "unmapped": [],
    }
    assert {k: amoxicillin[k] for k in MEDICATION_FIELDS} == {
        "action": "prescribe",
        "order_control": "NW",
        "placer_order_number": "RX1001",
        "filler_order_number": "YF1001",
        "prescription_number": "CF20240115001",
        "drug_code": "86900234000012",
        "drug_name": "阿莫西林胶囊",
        "drug_system": "YPBM",
        "dose": 0.5,
        "dose_unit": "g",
        "dosage_form": "CAP",
        "route": "PO",
        "frequency": "TID",
        "duration": "D7",
        "duration_days": 7,
        "quantity": 24.0,
        "quantity_unit": "粒",
        "prescribed_at": local(2024, 1, 15, 9, 55),
        "dispensed_at": None,
        "prescriber_id": "D1001",
        "prescriber_name": "李明",
        "department": "HXK",
        "visit_number": "MZ20240115002",
    }
    patient = amoxicillin["patient"]
    assert (patient["name"], patient["id_card_number"], patient["birth_date"]) == (
        "张三", ID_CARD, date(1949, 12, 31))


def test_v24_second_line_chinese_duration_and_fallbacks() -> None:
    liquorice = run(V24_RDE)[1]
    assert liquorice["event_id"] == event_id("RMYY", "RDE0001", "ORC2")
    assert (liquorice["drug_name"], liquorice["dose"], liquorice["dose_unit"]) == (
        "复方甘草片", 2.0, "片")
    assert (liquorice["frequency"], liquorice["duration"], liquorice["duration_days"]) == (
        "BID", "7天", 7)
    assert (liquorice["route"], liquorice["dosage_form"], liquorice["quantity"]) == (
        "口服", None, 36.0)
    assert liquorice["department"] == "MZ03"  # PV1-3.1 when ORC-17 is empty


@pytest.mark.parametrize("control", ["CA", "DC", "OC", "OD", "ca"])
def test_cancel_controls_make_a_cancel(control: str) -> None:
    text = V24_RDE.replace("ORC|NW|RX1001", f"ORC|{control}|RX1001")
    cancelled, other = run(text)
    assert (cancelled["action"], cancelled["order_control"]) == ("cancel", control)
    assert other["action"] == "prescribe"


def test_v251_timing_from_the_tq1_after_rxe() -> None:
    [metformin] = run(V251_RDE, "XYY")
    assert (metformin["frequency"], metformin["duration"], metformin["duration_days"]) == (
        "BID", "7天", 7)
    assert (metformin["dose"], metformin["dose_unit"], metformin["dosage_form"]) == (
        0.5, "g", "TAB")
    assert (metformin["department"], metformin["visit_number"]) == ("NK01", "ZY2024052001")
    assert (metformin["prescriber_id"], metformin["prescriber_name"]) == ("D2002", "赵敏")
    assert metformin["occurred_at"] == local(2024, 5, 20, 14, 30)
    assert metformin["event_id"] == event_id("XYY", "RDE0002", "ORC1")


def test_v251_timing_from_the_order_tq1_when_rxe_has_none() -> None:
    text = _without(V251_RDE, "TQ1|1||BID")
    [metformin] = run(text, "XYY")
    assert (metformin["frequency"], metformin["duration"], metformin["duration_days"]) == (
        "QD", "14d", 14)
    weeks = run(text.replace("14^d", "2^wk"), "XYY")[0]
    assert (weeks["duration"], weeks["duration_days"]) == ("2wk", None)


def test_v251_dispense() -> None:
    dispensed, amoxicillin = run(V251_RDS, "XYY")
    assert {k: dispensed[k] for k in MEDICATION_FIELDS} == {
        "action": "dispense",
        "order_control": "NW",
        "placer_order_number": "RX7001",
        "filler_order_number": None,
        "prescription_number": "FY20240520001",  # RXD-7 before RXE-15
        "drug_code": "86900000000031",
        "drug_name": "盐酸二甲双胍片",  # RXD-2, not RXE-2
        "drug_system": "YPBM",
        "dose": 0.5,
        "dose_unit": "g",
        "dosage_form": "TAB",
        "route": "PO",
        "frequency": "BID",
        "duration": "7天",
        "duration_days": 7,
        "quantity": 28.0,
        "quantity_unit": "片",
        "prescribed_at": local(2024, 5, 20, 14, 30),
        "dispensed_at": local(2024, 5, 20, 15, 55),
        "prescriber_id": "D2002",
        "prescriber_name": "赵敏",
        "department": "NK01",
        "visit_number": "ZY2024052001",
    }
    assert dispensed["occurred_at"] == local(2024, 5, 20, 15, 55)
    # RXD alone: no dose, timing or route; nothing borrowed from the other order
    assert {k: amoxicillin[k] for k in ("action", "order_control", "filler_order_number",
                                        "drug_name", "dose", "dosage_form", "route",
                                        "frequency", "duration_days", "quantity",
                                        "quantity_unit", "prescription_number",
                                        "prescribed_at", "occurred_at")} == {
        "action": "dispense", "order_control": "RE", "filler_order_number": "FY7002",
        "drug_name": "阿莫西林胶囊", "dose": None, "dosage_form": None, "route": None,
        "frequency": None, "duration_days": None, "quantity": 24.0, "quantity_unit": "粒",
        "prescription_number": None, "prescribed_at": None,
        "occurred_at": local(2024, 5, 20, 15, 56)}
    assert [e["event_id"] for e in (dispensed, amoxicillin)] == [
        event_id("XYY", "RDS0001", "ORC1"), event_id("XYY", "RDS0001", "ORC2")]


def test_dispense_route_is_the_rxr_after_rxd() -> None:
    text = V251_RDS.replace("RXR|PO\r", "RXR|NG^鼻饲\r")
    assert run(text, "XYY")[0]["route"] == "NG"


def test_dispense_falls_back_to_rxe_for_form_and_prescription_number() -> None:
    text = V251_RDS.replace("|TAB^片剂|FY20240520001", "||")
    dispensed = run(text, "XYY")[0]
    assert (dispensed["dosage_form"], dispensed["prescription_number"]) == ("TAB", "CF7001")


@pytest.mark.parametrize(
    ("duration", "days"),
    [("D7", 7), ("d14", 14), ("7D", 7), ("7d", 7), ("7", 7), ("7天", 7), ("7 天", 7),
     ("3日", 3), ("10 days", 10), ("1day", 1), (" D 30 ", 30), ("0", 0),
     ("W2", None), ("2wk", None), ("H12", None), ("1月", None), ("INDEF", None),
     ("1.5", None), ("5-7", None), ("七天", None), ("一周", None), ("D", None), ("", None),
     ("12345", None), (None, None)],
)
def test_duration_days(duration: str | None, days: int | None) -> None:
    assert duration_days(duration) == days


def _without(text: str, prefix: str) -> str:
    """``text`` without the segments that start with ``prefix``."""
    return "\r".join(s for s in text.split("\r") if not s.startswith(prefix))


MISSING = [
    ("no PID", _without(V24_RDE, "PID"), "100", "PID"),
    ("no ORC", _without(V24_RDE, "ORC"), "100", "ORC"),
    ("RDE group without RXE", _without(V24_RDE, "RXE|^BID"), "100", "ORC[2]"),
    ("RDS group without RXD", _without(V251_RDS, "RXD|1|8690000"), "100", "ORC[1]"),
    ("two RXE in one group", _without(V24_RDE, "ORC|NW|RX1002"), "100", "RXE[2]"),
]
BAD_VALUES = [  # (case, message, value, replaced by, code, location)
    ("empty RXE-2", V24_RDE, "86900234000012^阿莫西林", "^阿莫西林", "101", "RXE[1]-2"),
    ("empty RXD-2", V251_RDS, "86900234000012^阿莫西林", "^阿莫西林", "101", "RXD[2]-2"),
    ("bad RXE-3", V24_RDE, "|0.5||g^克", "|0.5g||g^克", "102", "RXE[1]-3"),
    ("bad RXE-10", V24_RDE, "|36|片", "|三十六|片", "102", "RXE[2]-10"),
    ("bad RXD-4", V251_RDS, "|24|粒^粒", "|24粒|粒^粒", "102", "RXD[2]-4"),
    ("bad RXD-3", V251_RDS, "20240520155600+0800", "2024-05-20", "102", "RXD[2]-3"),
    ("bad ORC-9", V24_RDE, "20240115095500", "20241315095500", "102", "ORC[1]-9"),
    ("empty PID-3", V24_RDE, f"P000123^^^RMYY^PI~{ID_CARD}^^^GA^SFZH", "", "101", "PID[1]-3"),
    ("not RDE or RDS", V24_RDE, "RDE^O11^RDE_O11", "ORM^O01^ORM_O01", "200", "MSH-9"),
]


ERRORS = MISSING + [(name, text.replace(old, new), code, where)
                    for name, text, old, new, code, where in BAD_VALUES]


@pytest.mark.parametrize(("case", "text", "code", "location"), ERRORS, ids=[e[0] for e in ERRORS])
def test_errors_name_the_place_and_never_the_value(
        case: str, text: str, code: str, location: str) -> None:
    with pytest.raises(ValidationError) as caught:
        run(text)
    assert (caught.value.code, caught.value.location) == (code, location), case
    for value in ("张三", ID_CARD, "阿莫西林", "0.5g", "三十六", "24粒", "2024-05-20"):
        assert value not in str(caught.value)


def test_naive_received_at_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone aware"):
        map_medication(Message.parse(V24_RDE), facility_id="RMYY",
                       received_at=datetime(2024, 1, 1))


def test_registered_for_rde_and_rds() -> None:
    assert MAPPERS[("RDE", "O11")] == ("medication", map_medication)
    assert MAPPERS[("RDS", "O13")] == ("medication", map_medication)


@pytest.mark.parametrize(("text", "actions"), [
    (V24_RDE, ["prescribe", "prescribe"]), (V251_RDE, ["prescribe"]),
    (V251_RDS, ["dispense", "dispense"])])
def test_adapter_end_to_end(text: str, actions: list[str]) -> None:
    adapted = adapt(Arrival(text.encode(), "mllp", RECEIVED, "127.0.0.1:5000"))
    assert (adapted.code, adapted.error, adapted.event_type) == ("AA", None, "medication")
    assert [(e["event_type"], e["action"]) for e in adapted.events] == [
        ("medication", action) for action in actions]
    assert [r.topic for r in records_for(adapted)] == [
        "hutong.raw.hl7v2", *["hutong.events.medication"] * len(actions)]


def test_adapter_bad_dose_is_ae_naming_the_field() -> None:
    text = V24_RDE.replace("|0.5||g^克", "|0.5g||g^克")
    adapted = adapt(Arrival(text.encode(), "mllp", RECEIVED))
    assert (adapted.code, adapted.events) == ("AE", [])
    assert adapted.error is not None
    assert (adapted.error.code, adapted.error.location) == ("102", "RXE[1]-3")
    assert "0.5g" not in adapted.error.reason
