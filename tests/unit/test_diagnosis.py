"""DG1 to diagnosis events, on their own and added by the ADT mapper.

Every person, number and facility below is fictional.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from hutong.errors import ValidationError
from producers.hl7v2.adapter import Arrival, adapt
from producers.hl7v2.adt import map_adt
from producers.hl7v2.common import Patients
from producers.hl7v2.diagnosis import DIAGNOSIS_KEYS, map_diagnoses
from producers.hl7v2.message import Message
from producers.hl7v2.types import DEFAULT_TZ
from producers.ids import event_id
from producers.records import records_for
from schemas import catalog, wire

RECEIVED = datetime(2024, 1, 15, 1, 31, tzinfo=UTC)
ID_CARD = "11010519491231002X"

#: ADR 0001 and schemas/diagnosis.avsc, written out again so a change to either is noticed.
ADR_HEADER = ["event_id", "event_type", "facility_id", "source_system", "message_control_id",
              "source_patient_id", "empi_id", "occurred_at", "received_at", "patient",
              "quality_warnings", "map_version", "codes", "unmapped"]
DIAGNOSIS_FIELDS = ["set_id", "diagnosis_code", "diagnosis_system", "diagnosis_name",
                    "diagnosis_type", "priority", "diagnosed_at", "clinician_id",
                    "clinician_name", "visit_number"]
#: Set by the stream worker (streams.practitioners); None as the adapter makes them.
LINK_FIELDS = ["practitioner_id", "practitioner_status"]


def seg(name: str, fields: dict[int, str]) -> str:
    """A segment with ``fields`` at their HL7 numbers (no counting of bars by hand)."""
    return "|".join([name, *(fields.get(n, "") for n in range(1, max(fields) + 1))])


def adt(trigger: str, *dg1: str, version: str = "2.4") -> str:
    """A Chinese hospital's ADT with an inpatient visit and the given DG1 segments."""
    return "\r".join([
        f"MSH|^~\\&|HIS|RMYY^人民医院|HUTONG|QYPT|20240115093000||ADT^{trigger}^ADT_A01|"
        f"DX{trigger}|P|{version}|||AL|NE|CHN|UNICODE UTF-8",
        seg("EVN", {1: trigger, 2: "20240115093000"}),
        seg("PID", {1: "1", 3: f"P000123^^^RMYY^PI~{ID_CARD}^^^GA^SFZH", 5: "张三",
                    7: "19491231", 8: "M"}),
        seg("PV1", {1: "1", 2: "I", 3: "0301^312^03", 7: "D001^李^四", 10: "NK^内科",
                    19: "ZY2024001", 44: "20240115080000"}),
        *dg1,
    ]) + "\r"


DIABETES = seg("DG1", {1: "1", 3: "E11.900^2型糖尿病^ICD-10", 5: "20240115083000", 6: "A",
                       15: "1", 16: "D001^李^四"})
HYPERTENSION = seg("DG1", {1: "2", 3: "I10.x00^高血压^ICD-10", 5: "20240115083500", 6: "A",
                           15: "2", 16: "D002^王^芳"})
#: v2.3 style: the name in DG1-4, no date, priority or clinician.
PNEUMONIA = seg("DG1", {1: "3", 2: "I10", 3: "J18.900^^ICD-10", 4: "肺炎", 6: "出院诊断"})


def run(text: str) -> list[dict[str, Any]]:
    return map_adt(Message.parse(text), facility_id="F001", received_at=RECEIVED)


def diagnoses(text: str) -> list[dict[str, Any]]:
    return map_diagnoses(Message.parse(text), facility_id="F001", received_at=RECEIVED)


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=DEFAULT_TZ)


def encodes(event: dict[str, Any]) -> None:
    """The event fits its schema: the Confluent wire encoder accepts it."""
    entry = catalog.for_topic(f"hutong.events.{event['event_type']}")
    assert wire.encode(entry, event)[:1] == b"\x00"


def test_keys_are_the_adr_header_then_the_schema_fields() -> None:
    schema_fields = [f["name"] for f in catalog.schema("diagnosis").parsed["fields"]]
    assert list(DIAGNOSIS_KEYS) == ADR_HEADER + DIAGNOSIS_FIELDS + LINK_FIELDS == schema_fields
    for event in diagnoses(adt("A03", DIABETES, HYPERTENSION, PNEUMONIA)):
        assert list(event) == list(DIAGNOSIS_KEYS)
        encodes(event)


def test_admission_with_two_dg1_gives_two_diagnosis_events() -> None:
    events = run(adt("A01", DIABETES, HYPERTENSION))
    assert [e["event_type"] for e in events] == ["patient", "encounter", "diagnosis",
                                                 "diagnosis"]
    for event in events:
        encodes(event)
    diabetes, hypertension = events[2:]
    assert {k: diabetes[k] for k in ADR_HEADER if k != "patient"} == {
        "event_id": event_id("F001", "DXA01", "DG11"),
        "event_type": "diagnosis",
        "facility_id": "F001",
        "source_system": "HIS",
        "message_control_id": "DXA01",
        "source_patient_id": "P000123",
        "empi_id": None,
        "occurred_at": local(2024, 1, 15, 8, 30),
        "received_at": RECEIVED,
        "quality_warnings": [],
        "map_version": None,
        "codes": [],
        "unmapped": [],
    }
    assert {k: diabetes[k] for k in DIAGNOSIS_FIELDS} == {
        "set_id": 1,
        "diagnosis_code": "E11.900",
        "diagnosis_system": "ICD-10",
        "diagnosis_name": "2型糖尿病",
        "diagnosis_type": "A",
        "priority": 1,
        "diagnosed_at": local(2024, 1, 15, 8, 30),
        "clinician_id": "D001",
        "clinician_name": "李四",
        "visit_number": "ZY2024001",
    }
    assert diabetes["patient"] == events[0]["patient"]
    assert (diabetes["patient"]["name"], diabetes["patient"]["id_card_number"]) == (
        "张三", ID_CARD)
    assert {k: hypertension[k] for k in DIAGNOSIS_FIELDS} == {
        "set_id": 2,
        "diagnosis_code": "I10.x00",
        "diagnosis_system": "ICD-10",
        "diagnosis_name": "高血压",
        "diagnosis_type": "A",
        "priority": 2,
        "diagnosed_at": local(2024, 1, 15, 8, 35),
        "clinician_id": "D002",
        "clinician_name": "王芳",
        "visit_number": "ZY2024001",
    }
    assert hypertension["event_id"] == event_id("F001", "DXA01", "DG12")


def test_v23_description_in_dg1_4_and_local_type() -> None:
    [pneumonia] = diagnoses(adt("A03", PNEUMONIA, version="2.3"))
    assert {k: pneumonia[k] for k in DIAGNOSIS_FIELDS} == {
        "set_id": 3, "diagnosis_code": "J18.900", "diagnosis_system": "ICD-10",
        "diagnosis_name": "肺炎", "diagnosis_type": "出院诊断", "priority": None,
        "diagnosed_at": None, "clinician_id": None, "clinician_name": None,
        "visit_number": "ZY2024001"}
    assert pneumonia["occurred_at"] is None


@pytest.mark.parametrize(("trigger", "count"), [
    ("A01", 2), ("A03", 2), ("A04", 2), ("A08", 2), ("A13", 2), ("A11", 0)])
def test_which_adt_triggers_add_diagnoses(trigger: str, count: int) -> None:
    events = run(adt(trigger, DIABETES, HYPERTENSION))
    assert sum(e["event_type"] == "diagnosis" for e in events) == count


def test_no_dg1_no_diagnosis() -> None:
    assert diagnoses(adt("A01")) == []
    assert [e["event_type"] for e in run(adt("A01"))] == ["patient", "encounter"]


def test_empty_set_id_and_no_pv1() -> None:
    text = "\r".join(s for s in adt("A01", DIABETES).split("\r") if not s.startswith("PV1"))
    [event] = diagnoses(text.replace("DG1|1|", "DG1||"))
    assert (event["set_id"], event["visit_number"]) == (None, None)


def test_delete_action_is_kept_with_a_warning() -> None:
    deleted = seg("DG1", {1: "1", 3: "E11.900^2型糖尿病^ICD-10", 6: "F", 21: "D"})
    [event] = diagnoses(adt("A08", deleted, version="2.5.1"))
    assert event["diagnosis_code"] == "E11.900"
    assert event["quality_warnings"] == ["DG1[1]-21: diagnosis action is D (delete)"]
    encodes(event)


def test_patient_warnings_reach_diagnoses_and_a_shared_cache_maps_pid_once() -> None:
    text = adt("A01", DIABETES).replace(ID_CARD, "110105194912310021")
    warning = "PID[1]-3[2]: ID card check character does not match"
    assert [e["quality_warnings"] for e in run(text)] == [[warning]] * 3
    msg = Message.parse(text)
    patients = Patients()
    shared = map_diagnoses(msg, facility_id="F001", received_at=RECEIVED, patients=patients)
    assert shared == diagnoses(text)
    pid = msg.segment("PID")
    assert pid is not None and patients(pid)[1] == [warning]  # not doubled


def test_each_dg1_belongs_to_the_pid_before_it() -> None:
    second = "\r".join([
        seg("PID", {1: "2", 3: "P000999^^^RMYY^PI", 5: "王五", 7: "19800101", 8: "F"}),
        seg("PV1", {1: "1", 2: "O", 3: "MZ09", 19: "MZ0099"}),
        seg("DG1", {1: "1", 3: "J06.900^急性上呼吸道感染^ICD-10"}),
    ])
    events = diagnoses(adt("A01", DIABETES) + second)
    assert [(e["source_patient_id"], e["visit_number"], e["event_id"]) for e in events] == [
        ("P000123", "ZY2024001", event_id("F001", "DXA01", "DG11")),
        ("P000999", "MZ0099", event_id("F001", "DXA01", "DG12"))]


ERRORS = [
    ("empty DG1-3.1", adt("A01", DIABETES, HYPERTENSION.replace("I10.x00", "")), "101",
     "DG1[2]-3"),
    ("bad DG1-15", adt("A01", DIABETES.replace("|1|D001", "|主|D001")), "102", "DG1[1]-15"),
    ("bad DG1-1", adt("A01", DIABETES.replace("DG1|1|", "DG1|一|")), "102", "DG1[1]-1"),
    ("DG1-1 too large (fuzzing found it)", adt("A01", DIABETES.replace(
        "DG1|1|", "DG1|333333333333333333333333332|")), "102", "DG1[1]-1"),
    ("bad DG1-5", adt("A01", DIABETES.replace("20240115083000", "2024-01-15")), "102",
     "DG1[1]-5"),
    ("DG1 before PID", adt("A01", DIABETES).replace("PID|1|", "NTE|1|"), "100", "DG1[1]"),
]


@pytest.mark.parametrize(("case", "text", "code", "location"), ERRORS, ids=[e[0] for e in ERRORS])
def test_errors_name_the_place_and_never_the_value(
        case: str, text: str, code: str, location: str) -> None:
    with pytest.raises(ValidationError) as caught:
        diagnoses(text)
    assert (caught.value.code, caught.value.location) == (code, location), case
    for value in ("张三", ID_CARD, "高血压", "主", "一", "2024-01-15"):
        assert value not in str(caught.value)


def test_adt_with_a_bad_dg1_gives_no_events_at_all() -> None:
    with pytest.raises(ValidationError) as caught:
        run(adt("A01", DIABETES, HYPERTENSION.replace("I10.x00", "")))
    assert caught.value.location == "DG1[2]-3"


def test_naive_received_at_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone aware"):
        map_diagnoses(Message.parse(adt("A01", DIABETES)), facility_id="F001",
                      received_at=datetime(2024, 1, 1))


def test_adapter_end_to_end() -> None:
    adapted = adapt(Arrival(adt("A01", DIABETES, HYPERTENSION).encode(), "mllp", RECEIVED))
    assert (adapted.code, adapted.error, adapted.event_type) == ("AA", None, "adt")
    assert [r.topic for r in records_for(adapted)] == [
        "hutong.raw.hl7v2", "hutong.events.patient", "hutong.events.encounter",
        "hutong.events.diagnosis", "hutong.events.diagnosis"]
