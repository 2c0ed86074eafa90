"""ORU^R01 to lab-result events: samples in v2.3.1, v2.4 (Chinese hospital) and v2.5.1.

Every person, number and facility below is fictional.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from hutong.errors import ValidationError
from producers.hl7v2.charset import decode_message
from producers.hl7v2.message import Message
from producers.hl7v2.oru import LAB_RESULT_KEYS, map_oru_r01
from producers.hl7v2.types import DEFAULT_TZ
from producers.ids import event_id

RECEIVED = datetime(2024, 1, 15, 1, 31, tzinfo=UTC)

#: ADR 0001, written out again so a change to either side is noticed.
ADR_HEADER = ["event_id", "event_type", "facility_id", "source_system", "message_control_id",
              "source_patient_id", "empi_id", "occurred_at", "received_at", "patient",
              "quality_warnings", "map_version", "codes", "unmapped"]
ADR_LAB_RESULT = ["set_id", "placer_order_number", "filler_order_number", "panel_code",
                  "panel_name", "specimen_type", "specimen_collected_at", "test_code",
                  "test_name", "test_system", "value_type", "value", "value_numeric", "unit",
                  "reference_range", "abnormal_flags", "result_status", "observed_at",
                  "performing_lab", "standard_value", "standard_unit", "ordering_provider_id",
                  "ordering_department", "visit_number", "patient_class"]
#: Set by the stream worker (streams.practitioners); None as the adapter makes them.
LINK_FIELDS = ["practitioner_id", "practitioner_status"]
ADR_PATIENT = ["source_patient_id", "identifiers", "id_card_number", "health_card_number",
               "name", "sex", "phone", "address", "birth_date"]

V24_CN = "\r".join([
    "MSH|^~\\&|LIS|RMYY^人民医院|HUTONG|QYPT|20240115093000||ORU^R01^ORU_R01|MSG0001|P|2.4"
    "|||AL|NE|CHN|GB 18030-2000",
    "PID|1||P000123^^^RMYY^PI~11010519491231002X^^^GA^SFZH||张三||19491231|M|||"
    "建国路1号^^北京市^北京市^^^^^朝阳区||13800000000",
    "PV1|1|I|NK^内科",
    "ORC|RE|ORD1001|LAB1001|||||||||D0012^李^医生",
    "OBR|1|ORD1001|LAB1001|CBC^血常规^L|||20240115073000|||||||20240115074500|BLD&全血",
    "OBX|1|NM|WBC^白细胞计数^L||12.6|10\\S\\9/L|3.5-9.5|H|||F|||20240115090000|JYK^检验科",
    "OBX|2|NM|HGB^血红蛋白^L||135|g/L|130-175|N|||F|||20240115090000",
    "NTE|1||建议复查",
    "ORC|RE|ORD1002|LAB1002",
    "OBR|2|ORD1002|LAB1002|IMM^免疫^L|||20240115073000|||||||20240115074500|SER&血清",
    "OBX|1|CE|HBSAG^乙肝表面抗原^L||NEG^阴性^L||阴性|N|||F|||20240115091000",
    "OBX|2|SN|CRP^C反应蛋白^L||>^100|mg/L|0-10|H~A|||F|||20240115091000",
    "OBX|3|ST|SPEC^标本状态^L||标本轻度溶血||||||F",
]) + "\r"

V231 = "\r".join([
    "MSH|^~\\&|LIS|SQWSZX|HUTONG|QYPT|20240301101500||ORU^R01|LAB20240301001|P|2.3.1",
    "PID|1||000456^^^SQWSZX^MR||王^小红||19850312|F|||幸福路12号^^天津市^天津市^^^^^河西区"
    "||022-12345678",
    "ORC|RE|PL001|FL001",
    "OBR|1|||GLU^血糖^L|||20240301080000|||||||20240301081500|SER^血清",
    "OBX|1|NM|GLU^空腹血糖^L||5.6|mmol/L|3.9-6.1|N|||F|||20240301100000",
    "OBX||NM|HBA1C^糖化血红蛋白^L||6.8|%|4.0-6.0|H|||F",
])

V251 = "\r".join([
    "MSH|^~\\&|LIS^2.16.156.10011.1.1^ISO|XYY^县医院|HUTONG|QYPT|20240520143000+0800||"
    "ORU^R01^ORU_R01|20240520143000001|P|2.5.1|||NE|AL||UNICODE UTF-8",
    "PID|1||Z0001^^^XYY^MR~JK1234567890^^^WJW^JKK||李^四||19700202|M|||||"
    "^PRN^CP^^^^^^^^^13900000000",
    "ORC|RE|P7001|F7001",
    "OBR|1|P7001|F7001|LFT^肝功能^L|||20240520080000+0800",
    "OBX|1|NM|ALT^丙氨酸氨基转移酶^L||45|U/L|9-50|N|||F|||20240520120000+0800|||||||||市临检中心",
    "OBX|2|NM|K^钾^L||6.8|mmol/L|3.5-5.3|HH|||F|||20240520120000+0800",
    "SPM|1|SP01||SER^血清^HL70487|||||||||||||20240520075500+0800",
])


def shanghai(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=DEFAULT_TZ)


def events(text: str, facility: str = "RMYY") -> list[dict[str, Any]]:
    return map_oru_r01(Message.parse(text), facility_id=facility, received_at=RECEIVED)


@pytest.mark.parametrize("text", [V24_CN, V231, V251])
def test_events_have_exactly_the_adr_keys(text: str) -> None:
    for event in events(text):
        assert list(event) == ADR_HEADER + ADR_LAB_RESULT + LINK_FIELDS
        assert sorted(event["patient"]) == sorted(ADR_PATIENT)
    assert list(LAB_RESULT_KEYS) == ADR_HEADER + ADR_LAB_RESULT + LINK_FIELDS


def test_v24_chinese_hospital() -> None:
    out = events(V24_CN)
    assert [e["test_code"] for e in out] == ["WBC", "HGB", "HBSAG", "CRP", "SPEC"]
    wbc, hgb, hbsag, crp, spec = out
    assert {k: wbc[k] for k in ADR_HEADER if k != "patient"} == {
        "event_id": event_id("RMYY", "MSG0001", "OBX1"),
        "event_type": "lab-result",
        "facility_id": "RMYY",
        "source_system": "LIS",
        "message_control_id": "MSG0001",
        "source_patient_id": "P000123",
        "empi_id": None,
        "occurred_at": shanghai(2024, 1, 15, 9, 0),
        "received_at": RECEIVED,
        "quality_warnings": [],
        "map_version": None,
        "codes": [],
        "unmapped": [],
    }
    assert {k: wbc[k] for k in ADR_LAB_RESULT} == {
        "set_id": 1,
        "placer_order_number": "ORD1001",
        "filler_order_number": "LAB1001",
        "panel_code": "CBC",
        "panel_name": "血常规",
        "specimen_type": "BLD",
        "specimen_collected_at": shanghai(2024, 1, 15, 7, 30),
        "test_code": "WBC",
        "test_name": "白细胞计数",
        "test_system": "L",
        "value_type": "NM",
        "value": "12.6",
        "value_numeric": 12.6,
        "unit": "10^9/L",
        "reference_range": "3.5-9.5",
        "abnormal_flags": ["H"],
        "result_status": "F",
        "observed_at": shanghai(2024, 1, 15, 9, 0),
        "performing_lab": "JYK",
        "standard_value": None,  # set by the stream's code translation
        "standard_unit": None,
        "ordering_provider_id": "D0012",  # ORC-12, by id only
        "ordering_department": "NK",  # PV1-3
        "visit_number": None,
        "patient_class": "I",
    }
    assert wbc["patient"]["name"] == "张三"
    assert wbc["patient"]["id_card_number"] == "11010519491231002X"
    assert wbc["patient"]["birth_date"] == date(1949, 12, 31)
    assert (hgb["value_numeric"], hgb["unit"], hgb["abnormal_flags"]) == (135.0, "g/L", ["N"])
    assert (hbsag["value_type"], hbsag["value"], hbsag["value_numeric"]) == ("CE", "阴性", None)
    assert (hbsag["panel_code"], hbsag["specimen_type"]) == ("IMM", "SER")
    assert (crp["value"], crp["value_numeric"], crp["abnormal_flags"]) == (">100", None, ["H", "A"])
    assert (spec["value_type"], spec["value"], spec["observed_at"]) == ("ST", "标本轻度溶血", None)
    assert spec["occurred_at"] == shanghai(2024, 1, 15, 7, 30)  # OBR-7 when OBX-14 is empty


def test_event_ids_count_obx_across_the_message() -> None:
    out = events(V24_CN)
    assert [e["event_id"] for e in out] == [
        event_id("RMYY", "MSG0001", f"OBX{n}") for n in range(1, 6)]
    assert len({e["event_id"] for e in out}) == 5
    assert [e["event_id"] for e in events(V24_CN)] == [e["event_id"] for e in out]
    assert events(V24_CN, "OTHER")[0]["event_id"] != out[0]["event_id"]


def test_v231_placer_from_orc_and_missing_set_id() -> None:
    glu, hba1c = events(V231, "SQWSZX")
    assert (glu["placer_order_number"], glu["filler_order_number"]) == ("PL001", "FL001")
    assert (glu["specimen_type"], glu["unit"], glu["value_numeric"]) == ("SER", "mmol/L", 5.6)
    assert hba1c["set_id"] == 2  # OBX-1 empty: its place in the order
    assert hba1c["occurred_at"] == shanghai(2024, 3, 1, 8, 0)
    patient = glu["patient"]
    assert (patient["name"], patient["sex"], patient["phone"]) == ("王小红", "F", "022-12345678")
    assert patient["address"] == "天津市河西区幸福路12号"


def test_v251_specimen_from_spm() -> None:
    alt, potassium = events(V251, "XYY")
    assert alt["specimen_type"] == "SER"
    assert alt["specimen_collected_at"] == shanghai(2024, 5, 20, 7, 55)
    assert alt["performing_lab"] == "市临检中心"
    assert alt["source_system"] == "LIS"
    assert (potassium["value_numeric"], potassium["abnormal_flags"]) == (6.8, ["HH"])
    patient = alt["patient"]
    assert (patient["health_card_number"], patient["phone"]) == ("JK1234567890", "13900000000")
    assert patient["id_card_number"] is None


@pytest.mark.parametrize("charset", ["GB 18030-2000", ""])
def test_gb18030_bytes(charset: str) -> None:
    raw = V24_CN.replace("GB 18030-2000", charset).encode("gb18030")
    text, codec = decode_message(raw)
    assert codec == "gb18030"
    out = map_oru_r01(Message.parse(text, charset=codec), facility_id="RMYY",
                      received_at=RECEIVED)
    assert out[0]["patient"]["name"] == "张三" and out[2]["value"] == "阴性"


@pytest.mark.parametrize(
    ("obx5", "value", "numeric"),
    [
        ("^100", "100", 100.0),
        ("=^7.5", "=7.5", 7.5),
        ("<^0.5", "<0.5", None),
        (">=^10", ">=10", None),
        ("^1^:^128", "1:128", None),
        ("^10^-^20", "10-20", None),
    ],
)
def test_structured_numeric(obx5: str, value: str, numeric: float | None) -> None:
    text = V231.replace("OBX|1|NM|GLU^空腹血糖^L||5.6|", f"OBX|1|SN|GLU^空腹血糖^L||{obx5}|")
    result = events(text)[0]
    assert (result["value"], result["value_numeric"]) == (value, numeric)


def test_text_values_keep_repetitions_and_unescaped_carets() -> None:
    text = V231.replace("OBX|1|NM|GLU^空腹血糖^L||5.6|",
                        "OBX|1|TX|GLU^空腹血糖^L||第一行~第二行\\.br\\第三行 A^B|")
    assert events(text)[0]["value"] == "第一行\n第二行\n第三行 A^B"


def test_unescaped_power_of_ten_unit_is_repaired_with_a_warning() -> None:
    text = V24_CN.replace("10\\S\\9/L", "10^9/L")
    wbc = events(text)[0]
    assert wbc["unit"] == "10^9/L"
    assert wbc["quality_warnings"] == ["OBX[1]-6: unit has an unescaped '^' (read as 10^9/L)"]


def test_patient_warnings_reach_every_event() -> None:
    text = V24_CN.replace("11010519491231002X^^^GA^SFZH", "110105194912310021^^^GA^SFZH")
    for event in events(text):
        assert event["quality_warnings"][0] == (
            "PID[1]-3[2]: ID card check character does not match")


def test_several_patients_in_one_message() -> None:
    second = V231.split("\r", 1)[1].replace("000456", "000789")
    out = events(V231 + "\r" + second)
    assert [e["source_patient_id"] for e in out] == ["000456"] * 2 + ["000789"] * 2
    assert len({e["event_id"] for e in out}) == 4


def _without(text: str, prefix: str) -> str:
    return "\r".join(s for s in text.split("\r") if not s.startswith(prefix))


ERRORS = [
    ("no PID", _without(V24_CN, "PID"), "100", "PID"),
    ("empty PID-3", V24_CN.replace("P000123^^^RMYY^PI~11010519491231002X^^^GA^SFZH", ""),
     "101", "PID[1]-3"),
    ("no OBR", _without(V24_CN, "OBR"), "100", "OBR"),
    ("no OBX", _without(V24_CN, "OBX"), "100", "OBR[1]"),
    ("OBR without OBX", V24_CN.replace("OBX|1|NM|WBC", "NTE|9|NM|WBC").replace(
        "OBX|2|NM|HGB", "NTE|9|NM|HGB"), "100", "OBR[1]"),
    ("OBX before OBR", V24_CN.replace("OBR|1|ORD1001", "NTE|1|ORD1001"), "100", "OBX[1]"),
    ("empty OBX-3.1", V24_CN.replace("HGB^血红蛋白^L", "^血红蛋白^L"), "101", "OBX[2]-3"),
    ("empty OBX-2", V24_CN.replace("OBX|2|NM|HGB", "OBX|2||HGB"), "101", "OBX[2]-2"),
    ("bad NM", V24_CN.replace("||135|", "||1,35|"), "102", "OBX[2]-5"),
    ("bad SN number", V24_CN.replace(">^100", ">^abc"), "102", "OBX[4]-5"),
    ("bad SN comparator", V24_CN.replace(">^100", "!^100"), "102", "OBX[4]-5"),
    ("bad OBX-1", V24_CN.replace("OBX|2|NM|HGB", "OBX|二|NM|HGB"), "102", "OBX[2]-1"),
    ("OBX-1 too large", V24_CN.replace("OBX|2|NM|HGB", "OBX|2147483648|NM|HGB"), "102",
     "OBX[2]-1"),
    ("bad OBX-14", V24_CN.replace("F|||20240115091000", "F|||2024-01-15 09:10", 1), "102",
     "OBX[3]-14"),
    ("bad OBR-7", V24_CN.replace("LAB1002|IMM^免疫^L|||20240115073000",
                                 "LAB1002|IMM^免疫^L|||20241315073000"), "102", "OBR[2]-7"),
    ("bad SPM-17", V251.replace("20240520075500+0800", "yesterday"), "102", "SPM[1]-17"),
    ("no control id", V24_CN.replace("|MSG0001|", "||"), "101", "MSH-10"),
]


@pytest.mark.parametrize(("case", "text", "code", "location"), ERRORS, ids=[e[0] for e in ERRORS])
def test_validation_errors_name_the_place(case: str, text: str, code: str, location: str) -> None:
    with pytest.raises(ValidationError) as caught:
        events(text)
    error = caught.value
    assert (error.code, error.location) == (code, location), case
    for value in ("张三", "11010519491231002X", "1,35", "abc", "2024-01-15", "yesterday"):
        assert value not in str(error)


def test_specimen_observations_after_spm_are_events_too() -> None:
    text = V251 + "\rOBX|3|NM|VOL^标本量^L||5|mL||||||F"
    out = events(text, "XYY")
    assert [e["test_code"] for e in out] == ["ALT", "K", "VOL"]
    assert out[2]["specimen_type"] == "SER"


def test_naive_received_at_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone aware"):
        map_oru_r01(Message.parse(V231), facility_id="X", received_at=datetime(2024, 1, 1))


def test_the_ordering_provider_falls_back_to_obr16_and_no_pv1_leaves_the_visit_empty() -> None:
    text = V231.replace("OBR|1|||GLU^血糖^L|||20240301080000|||||||20240301081500|SER^血清",
                        "OBR|1|||GLU^血糖^L|||20240301080000|||||||20240301081500|SER^血清|"
                        "D77^王^医生")
    glucose = events(text)[0]
    assert (glucose["ordering_provider_id"], glucose["ordering_department"],
            glucose["visit_number"], glucose["patient_class"]) == ("D77", None, None, None)
