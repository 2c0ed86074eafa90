"""ADT to patient and encounter events: samples in v2.3, v2.4 (Chinese hospital) and v2.5.1.

Every person, number and facility below is fictional.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from hutong.errors import ValidationError
from producers.hl7v2.adapter import MAPPERS
from producers.hl7v2.adt import ADT_TRIGGERS, ENCOUNTER_KEYS, PATIENT_EVENT_KEYS, map_adt
from producers.hl7v2.message import Message
from producers.hl7v2.types import DEFAULT_TZ
from producers.ids import event_id
from schemas import catalog, wire

RECEIVED = datetime(2024, 1, 15, 1, 31, tzinfo=UTC)
ID_CARD = "11010519491231002X"

#: ADR 0001 and the two schemas, written out again so a change to either side is noticed.
ADR_HEADER = ["event_id", "event_type", "facility_id", "source_system", "message_control_id",
              "source_patient_id", "empi_id", "occurred_at", "received_at", "patient",
              "quality_warnings", "map_version", "codes", "unmapped"]
PATIENT_FIELDS = ["action", "trigger_event", "merged_source_patient_id", "ethnic_group",
                  "marital_status", "nationality", "occupation", "deceased", "deceased_at"]
ENCOUNTER_FIELDS = ["action", "trigger_event", "visit_number", "patient_class",
                    "department_code", "department_name", "ward", "room", "bed",
                    "prior_location", "attending_doctor_id", "attending_doctor_name",
                    "admit_source", "admit_reason", "admitted_at", "discharged_at",
                    "discharge_disposition"]
#: Set by the stream worker (streams.practitioners); None as the adapter makes them.
LINK_FIELDS = ["practitioner_id", "practitioner_status"]


def seg(name: str, fields: dict[int, str]) -> str:
    """A segment with ``fields`` at their HL7 numbers (no counting of bars by hand)."""
    values = [""] * max(fields)
    for n, value in fields.items():
        values[n - 1] = value
    return "|".join([name, *values])


def v24_cn(trigger: str, *, evn6: str = "", pv1: bool = True) -> str:
    """A Chinese hospital's v2.4 ADT: 身份证号 in PID-3 typed SFZH, 民族 in PID-22."""
    segments = [
        f"MSH|^~\\&|HIS|RMYY^人民医院|HUTONG|QYPT|20240115093000||ADT^{trigger}^ADT_A01|"
        f"CN{trigger}|P|2.4|||AL|NE|CHN|UNICODE UTF-8",
        seg("EVN", {1: trigger, 2: "20240115093000", 6: evn6}),
        seg("PID", {1: "1", 3: f"P000123^^^RMYY^PI~{ID_CARD}^^^GA^SFZH", 5: "张三",
                    7: "19491231", 8: "M", 11: "建国路1号^^北京市^北京市^^^^^朝阳区",
                    13: "13800000000", 16: "20^已婚", 22: "01^汉族", 28: "CHN^中国"}),
    ]
    if pv1:
        segments += [
            seg("PV1", {1: "1", 2: "I", 3: "0301^312^03^RMYY^^^^^内科病区", 4: "R",
                        6: "0302^305^01", 7: "D001^李^四", 10: "NK^内科", 14: "7",
                        19: "ZY2024001", 36: "1", 44: "20240115080000",
                        45: "20240120100000"}),
            seg("PV2", {3: "R51^头痛"}),
        ]
    return "\r".join(segments) + "\r"


V23_A04 = "\r".join([
    "MSH|^~\\&|HIS|SQWSZX|HUTONG|QYPT|20240301101500||ADT^A04|MZ20240301001|P|2.3",
    "EVN|A04|20240301101500",
    seg("PID", {1: "1", 3: "000456^^^SQWSZX^MR", 5: "Wang^Xiaohong", 7: "19850312", 8: "F",
                30: "Y"}),
    seg("PV1", {1: "1", 2: "O", 3: "MZ01^^^^^^^^全科门诊", 19: "MZ0001",
                44: "20240301100000"}),
]) + "\r"

V251_A28 = "\r".join([
    "MSH|^~\\&|EMR|CHC01|HUTONG|QYPT|20240302080000+0800||ADT^A28^ADT_A05|R0001|P|2.5.1",
    "EVN||20240302080000+0800|||||CHC01",
    seg("PID", {1: "1", 3: "H777^^^CHC01^MR~JK00001^^^WJW^JKK", 5: "李^雷", 7: "19700101",
                8: "M", 29: "20240301120000", 30: "Y"}),
    "PV1|1|N",
]) + "\r"

V251_A40 = "\r".join([
    "MSH|^~\\&|EMR|CHC01|HUTONG|QYPT|20240303080000||ADT^A40^ADT_A39|MRG0001|P|2.5.1",
    "EVN|A40|20240303080000",
    "PID|1||KEEP1^^^CHC01^MR||赵^六||19600101|M",
    "MRG|OLD1^^^CHC01^MR",
    "PID|2||KEEP2^^^CHC01^MR||钱^七||19610101|F",
    "PD1|||CHC01",
    "MRG|OLD2^^^CHC01^MR",
]) + "\r"


def run(text: str) -> list[dict[str, Any]]:
    return map_adt(Message.parse(text), facility_id="F001", received_at=RECEIVED)


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=DEFAULT_TZ)


def encodes(event: dict[str, Any]) -> None:
    """The event fits its schema: the Confluent wire encoder accepts it."""
    entry = catalog.for_topic(f"hutong.events.{event['event_type']}")
    assert wire.encode(entry, event)[:1] == b"\x00"


@pytest.mark.parametrize(
    ("trigger", "patient_action", "encounter_action"),
    [("A01", "admit", "admit"), ("A02", "update", "transfer"),
     ("A03", "update", "discharge"), ("A04", "register", "register"),
     ("A05", "register", "register"), ("A08", "update", "update"),
     ("A11", "update", "cancel"), ("A13", "update", "cancel"),
     ("A28", "register", None), ("A31", "update", None)],
)
def test_each_trigger_gives_its_events_and_actions(
        trigger: str, patient_action: str, encounter_action: str | None) -> None:
    events = run(v24_cn(trigger))
    assert [e["event_type"] for e in events] == ["patient"] + (
        ["encounter"] if encounter_action else [])
    assert events[0]["action"] == patient_action
    assert events[0]["trigger_event"] == trigger
    assert events[0]["event_id"] == event_id("F001", f"CN{trigger}", "PAT")
    if encounter_action:
        assert events[1]["action"] == encounter_action
        assert events[1]["event_id"] == event_id("F001", f"CN{trigger}", "ENC")
    for event in events:
        encodes(event)


def test_every_trigger_is_registered_with_label_adt() -> None:
    for trigger in ("A01", "A02", "A03", "A04", "A05", "A08", "A11", "A13", "A28", "A31", "A40"):
        assert MAPPERS[("ADT", trigger)] == ("adt", map_adt)
    assert set(ADT_TRIGGERS) == {t for (kind, t) in MAPPERS if kind == "ADT"}


def test_v24_chinese_admit_patient_fields() -> None:
    [person, visit] = run(v24_cn("A01"))
    assert list(person) == ADR_HEADER + PATIENT_FIELDS
    assert list(visit) == ADR_HEADER + ENCOUNTER_FIELDS + LINK_FIELDS
    assert list(person) == list(PATIENT_EVENT_KEYS)
    assert list(visit) == list(ENCOUNTER_KEYS)
    assert person["source_patient_id"] == visit["source_patient_id"] == "P000123"
    assert person["patient"]["name"] == "张三"
    assert person["patient"]["id_card_number"] == ID_CARD
    assert person["patient"]["birth_date"] == date(1949, 12, 31)
    assert (person["ethnic_group"], person["marital_status"], person["nationality"]) == (
        "01", "20", "CHN")
    assert (person["deceased"], person["deceased_at"], person["occupation"]) == (None, None, None)
    assert person["merged_source_patient_id"] is None
    assert person["empi_id"] is None and person["map_version"] is None
    assert (person["facility_id"], person["source_system"], person["message_control_id"]) == (
        "F001", "HIS", "CNA01")
    # no EVN-6: an admission happened at PV1-44
    assert person["occurred_at"] == visit["occurred_at"] == local(2024, 1, 15, 8, 0)
    assert person["received_at"] == RECEIVED


def test_v24_chinese_admit_encounter_fields() -> None:
    visit = run(v24_cn("A01"))[1]
    assert {k: visit[k] for k in ENCOUNTER_FIELDS} == {
        "action": "admit", "trigger_event": "A01", "visit_number": "ZY2024001",
        "patient_class": "I", "department_code": "NK", "department_name": "内科",
        "ward": "0301", "room": "312", "bed": "03", "prior_location": "0302/305/01",
        "attending_doctor_id": "D001", "attending_doctor_name": "李四", "admit_source": "7",
        "admit_reason": "头痛", "admitted_at": local(2024, 1, 15, 8, 0),
        "discharged_at": local(2024, 1, 20, 10, 0), "discharge_disposition": "1",
    }


def test_occurred_at_prefers_evn6_then_pv1_45_for_discharge_then_evn2() -> None:
    assert run(v24_cn("A01", evn6="20240115070000"))[0]["occurred_at"] == local(2024, 1, 15, 7)
    assert run(v24_cn("A03"))[0]["occurred_at"] == local(2024, 1, 20, 10)
    assert run(v24_cn("A08"))[0]["occurred_at"] == local(2024, 1, 15, 9, 30)
    assert run(v24_cn("A01", pv1=False))[0]["occurred_at"] == local(2024, 1, 15, 9, 30)


def test_visit_trigger_without_pv1_gives_only_the_patient() -> None:
    events = run(v24_cn("A01", pv1=False))
    assert [e["event_type"] for e in events] == ["patient"]


def test_v23_outpatient_registration() -> None:
    [person, visit] = run(V23_A04)
    assert person["patient"]["name"] == "Wang Xiaohong"
    assert person["deceased"] is True
    assert (visit["patient_class"], visit["visit_number"]) == ("O", "MZ0001")
    assert (visit["department_code"], visit["department_name"], visit["ward"]) == (
        "MZ01", "全科门诊", None)
    assert visit["admitted_at"] == person["occurred_at"] == local(2024, 3, 1, 10, 0)
    assert visit["admit_reason"] is None
    for event in (person, visit):
        encodes(event)


def test_v251_add_person_with_placeholder_pv1_and_death() -> None:
    [person] = run(V251_A28)
    assert person["action"] == "register"
    assert person["patient"]["health_card_number"] == "JK00001"
    assert person["patient"]["name"] == "李雷"
    assert person["deceased"] is True
    assert person["deceased_at"] == local(2024, 3, 1, 12, 0)
    assert person["occurred_at"] == local(2024, 3, 2, 8, 0)
    encodes(person)


def test_v251_merge_gives_one_event_per_pair() -> None:
    events = run(V251_A40)
    assert [(e["action"], e["source_patient_id"], e["merged_source_patient_id"])
            for e in events] == [("merge", "KEEP1", "OLD1"), ("merge", "KEEP2", "OLD2")]
    assert [e["event_id"] for e in events] == [
        event_id("F001", "MRG0001", "PAT1"), event_id("F001", "MRG0001", "PAT2")]
    assert [e["patient"]["name"] for e in events] == ["赵六", "钱七"]
    assert all(e["event_type"] == "patient" and e["trigger_event"] == "A40" for e in events)
    for event in events:
        encodes(event)


def test_quality_warnings_are_carried_over() -> None:
    bad_card = v24_cn("A01").replace(ID_CARD, "110105194912310021")
    person, visit = run(bad_card)
    assert person["quality_warnings"] == visit["quality_warnings"] == [
        "PID[1]-3[2]: ID card check character does not match"]


@pytest.mark.parametrize(
    ("text", "code", "location"),
    [
        (v24_cn("A01").replace("PID|1||P000123", "XXX|1||P000123"), "100", "PID"),
        (V251_A40.replace("MRG|OLD2^^^CHC01^MR\r", ""), "100", "MRG"),
        (V251_A40.replace("MRG|OLD1^^^CHC01^MR\r", ""), "100", "MRG"),
        (V251_A40.replace("MRG|OLD2^^^CHC01^MR", "MRG|"), "101", "MRG[2]-1"),
        (v24_cn("A01").replace("PID|1||P000123^^^RMYY^PI~", "PID|1||"), None, None),
        (v24_cn("A01").replace("20240115080000|", "2024011508xx|"), "102", "PV1[1]-44"),
        (v24_cn("A01").replace("PID|1||P000123^^^RMYY^PI~" + ID_CARD + "^^^GA^SFZH", "PID|1||"),
         "101", "PID[1]-3"),
    ],
)
def test_errors_name_the_place_and_never_the_value(
        text: str, code: str | None, location: str | None) -> None:
    if code is None:  # the ID card alone is still a patient id
        assert run(text)[0]["source_patient_id"] == ID_CARD
        return
    with pytest.raises(ValidationError) as caught:
        run(text)
    assert (caught.value.code, caught.value.location) == (code, location)
    for value in ("张三", ID_CARD, "OLD1", "2024011508xx"):
        assert value not in str(caught.value)


def test_naive_received_at_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone aware"):
        map_adt(Message.parse(V23_A04), facility_id="F001", received_at=datetime(2024, 1, 1))
