"""PACS/RIS reports to imaging-report events: ORU^R01 (v2.4, v2.5.1) and MDM^T02.

Every person, number, UID and facility below is fictional.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import pytest

from hutong.errors import ValidationError
from producers.hl7v2.adapter import MAPPERS, Arrival, adapt
from producers.hl7v2.imaging import (
    IMAGING_REPORT_KEYS,
    is_imaging_mdm,
    is_imaging_oru,
    map_imaging_oru,
    map_mdm_t02,
    map_oru,
)
from producers.hl7v2.message import Message
from producers.hl7v2.oru import map_oru_r01
from producers.hl7v2.types import DEFAULT_TZ
from producers.ids import event_id
from producers.records import records_for
from schemas import catalog, wire

RECEIVED = datetime(2024, 1, 15, 2, 31, tzinfo=UTC)
STUDY_UID = "1.2.840.113619.2.55.3.604688119.868.1234567890.123"
DX_UID = "1.2.840.113619.2.55.3.604688119.868.1234567890.124"

#: ADR 0001 and schemas/imaging-report.avsc, written out again so a change to either is noticed.
ADR_HEADER = ["event_id", "event_type", "facility_id", "source_system", "message_control_id",
              "source_patient_id", "empi_id", "occurred_at", "received_at", "patient",
              "quality_warnings", "map_version", "codes", "unmapped"]
IMAGING_FIELDS = ["accession_number", "placer_order_number", "filler_order_number",
                  "study_instance_uid", "modality", "procedure_code", "procedure_name",
                  "body_part", "study_at", "reported_at", "report_status", "report_text",
                  "impression", "critical_finding", "radiologist_id", "radiologist_name",
                  "performing_department"]
#: Set by the stream worker (streams.practitioners); None as the adapter makes them.
LINK_FIELDS = ["practitioner_id", "practitioner_status"]


def seg(name: str, fields: dict[int, str]) -> str:
    """A segment with ``fields`` at their HL7 numbers (no counting of bars by hand)."""
    values = [""] * max(fields)
    for n, value in fields.items():
        values[n - 1] = value
    return "|".join([name, *values])


def shanghai(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=DEFAULT_TZ)


#: A v2.4 CT report from a city hospital's RIS: ZDS for the study, LOINC-coded sections.
CT_V24 = "\r".join([
    "MSH|^~\\&|RIS|RMYY^人民医院|HUTONG|QYPT|20240115103000||ORU^R01^ORU_R01|RIS0001|P|2.4"
    "|||AL|NE|CHN|UNICODE UTF-8",
    "PID|1||P000123^^^RMYY^PI~11010519491231002X^^^GA^SFZH||张三||19491231|M|||"
    "建国路1号^^北京市^北京市^^^^^朝阳区||13800000000",
    "PV1|1|I|0301^312^03^RMYY^^^^^内科病区",
    "ORC|RE|SQ2024001|JC2024001",
    seg("OBR", {1: "1", 2: "SQ2024001", 3: "JC2024001", 4: "CT0101^胸部CT平扫^RIS",
                7: "20240115091500", 15: "^^^CHEST&胸部", 18: "CT20240115001",
                22: "20240115102000", 24: "CT", 25: "F", 32: "D2001&王&放射"}),
    f"ZDS|{STUDY_UID}^RIS^Application^DICOM",
    "OBX|1|TX|18782-3^检查所见^LN||双肺纹理清晰，右肺上叶见一磨玻璃结节，直径约6mm。"
    "\\.br\\纵隔内未见肿大淋巴结。~心影大小形态正常。||||||F|||20240115101500|||||||||"
    "放射科",
    "OBX|2|TX|19005-8^诊断意见^LN||右肺上叶磨玻璃结节，建议6个月后复查。||||||F",
    "NTE|1||报告仅供临床参考",
])

#: A v2.5.1 chest film from a county hospital's PACS: a pneumothorax marked critical (危急值),
#: suffixed OBX-3 sections, the study UID in an RP OBX, the radiologist only in OBX-16.
DX_V251 = "\r".join([
    "MSH|^~\\&|PACS^2.16.156.10011.1.9^ISO|XYY^县医院|HUTONG|QYPT|20240520143000+0800||"
    "ORU^R01^ORU_R01|PACS20240520001|P|2.5.1|||NE|AL||UNICODE UTF-8",
    "PID|1||Z0001^^^XYY^MR~JK1234567890^^^WJW^JKK||李^四||19700202|M",
    "ORC|RE|P7001|F7001",
    seg("OBR", {1: "1", 2: "P7001", 3: "F7001", 4: "DX0201^胸部正位片^RIS",
                7: "20240520140000+0800", 22: "20240520142500+0800", 24: "DR", 25: "F"}),
    f"OBX|1|RP|113014^Study Instance UID^DCM||{DX_UID}^PACS^Application^DICOM||||||F",
    "OBX|2|CWE|71020&ANT^检查部位^L||CHEST^胸部^L||||||F",
    "OBX|3|FT|71020&GDT^影像所见^L||左侧胸腔可见无肺纹理透亮区，左肺压缩约40%。"
    "~纵隔向右侧移位，膈肌未见异常。||||||F",
    "OBX|4|FT|71020&IMP^诊断意见^L||左侧气胸（肺压缩约40%），已电话通知临床。|||AA|||F|||"
    "20240520142500+0800||R3001^赵^影|||||||县医院放射科",
])

#: An MDM^T02 from a RIS: the report as a document, TXA for who and when.
MDM_V251 = "\r".join([
    "MSH|^~\\&|RIS|RMYY^人民医院|HUTONG|QYPT|20240116110000||MDM^T02^MDM_T02|MDM0001|P|2.5.1"
    "|||AL|NE|CHN|UNICODE UTF-8",
    "EVN|T02|20240116110000",
    "PID|1||P000123^^^RMYY^PI||张三||19491231|M",
    "PV1|1|O|FSK^放射科",
    "ORC|RE|SQ2024002|JC2024002",
    seg("OBR", {1: "1", 2: "SQ2024002", 3: "JC2024002", 4: "MR0301^头颅MR平扫^RIS",
                7: "20240116093000", 18: "MR20240116007"}),
    seg("TXA", {1: "1", 2: "MR", 3: "TX", 4: "20240116105500", 9: "D2002^孙^磁",
                12: "DOC20240116001^RIS", 17: "AU", 19: "AV"}),
    "OBX|1|TX|18782-3^检查所见^LN||脑实质内未见异常信号。\\.br\\脑室系统未见扩大。||||||F",
    "OBX|2|TX|19005-8^诊断意见^LN||头颅MR平扫未见明显异常。||||||F",
])

#: An ordinary LIS result: OBR-24 LAB, numbers, no imaging markers.
LIS = "\r".join([
    "MSH|^~\\&|LIS|RMYY^人民医院|HUTONG|QYPT|20240115093000||ORU^R01^ORU_R01|LAB0001|P|2.4",
    "PID|1||P000123^^^RMYY^PI||张三||19491231|M",
    "ORC|RE|ORD1001|LAB1001",
    seg("OBR", {1: "1", 2: "ORD1001", 3: "LAB1001", 4: "CBC^血常规^L", 7: "20240115073000",
                24: "LAB", 25: "F"}),
    "OBX|1|NM|WBC^白细胞计数^L||12.6|10\\S\\9/L|3.5-9.5|H|||F",
    "OBX|2|TX|COMMENT^备注^L||标本轻度溶血||||||F",
])


def oru(text: str, facility: str = "RMYY") -> list[dict[str, Any]]:
    return map_imaging_oru(Message.parse(text), facility_id=facility, received_at=RECEIVED)


def mdm(text: str, facility: str = "RMYY") -> list[dict[str, Any]]:
    return map_mdm_t02(Message.parse(text), facility_id=facility, received_at=RECEIVED)


def fits_schema(event: dict[str, Any]) -> None:
    """The event fits its schema: the Confluent wire encoder accepts it."""
    entry = catalog.for_topic(f"hutong.events.{event['event_type']}")
    assert entry.name == "imaging-report"
    assert wire.encode(entry, event)[:1] == b"\x00"
    assert wire.decode(wire.encode(entry, event))[1]["report_text"] == event["report_text"]


def test_keys_are_the_schema_fields_in_order() -> None:
    schema_fields = [f["name"] for f in catalog.schema("imaging-report").parsed["fields"]]
    assert list(IMAGING_REPORT_KEYS) == ADR_HEADER + IMAGING_FIELDS + LINK_FIELDS == schema_fields
    for event in [*oru(CT_V24), *oru(DX_V251, "XYY"), *mdm(MDM_V251)]:
        assert list(event) == ADR_HEADER + IMAGING_FIELDS + LINK_FIELDS
        fits_schema(event)


def test_v24_ct_chest_with_findings_and_impression() -> None:
    (ct,) = oru(CT_V24)
    assert {k: ct[k] for k in ADR_HEADER if k != "patient"} == {
        "event_id": event_id("RMYY", "RIS0001", "OBR1"),
        "event_type": "imaging-report",
        "facility_id": "RMYY",
        "source_system": "RIS",
        "message_control_id": "RIS0001",
        "source_patient_id": "P000123",
        "empi_id": None,
        "occurred_at": shanghai(2024, 1, 15, 9, 15),
        "received_at": RECEIVED,
        "quality_warnings": [],
        "map_version": None,
        "codes": [],
        "unmapped": [],
    }
    assert {k: ct[k] for k in IMAGING_FIELDS} == {
        "accession_number": "CT20240115001",
        "placer_order_number": "SQ2024001",
        "filler_order_number": "JC2024001",
        "study_instance_uid": STUDY_UID,
        "modality": "CT",
        "procedure_code": "CT0101",
        "procedure_name": "胸部CT平扫",
        "body_part": "CHEST",
        "study_at": shanghai(2024, 1, 15, 9, 15),
        "reported_at": shanghai(2024, 1, 15, 10, 20),
        "report_status": "F",
        "report_text": "双肺纹理清晰，右肺上叶见一磨玻璃结节，直径约6mm。\n纵隔内未见肿大淋巴结。\n"
                       "心影大小形态正常。",
        "impression": "右肺上叶磨玻璃结节，建议6个月后复查。",
        "critical_finding": False,
        "radiologist_id": "D2001",
        "radiologist_name": "王放射",
        "performing_department": "放射科",
    }
    patient = ct["patient"]
    assert (patient["name"], patient["id_card_number"], patient["birth_date"]) == (
        "张三", "11010519491231002X", date(1949, 12, 31))
    assert patient["address"] == "北京市朝阳区建国路1号"


def test_v251_dx_with_a_critical_pneumothorax() -> None:
    (dx,) = oru(DX_V251, "XYY")
    assert {k: dx[k] for k in IMAGING_FIELDS} == {
        "accession_number": "F7001",  # no OBR-18 nor IPC: the filler order number
        "placer_order_number": "P7001",
        "filler_order_number": "F7001",
        "study_instance_uid": DX_UID,
        "modality": "DX",  # OBR-24 "DR", as Chinese PACS name digital radiography
        "procedure_code": "DX0201",
        "procedure_name": "胸部正位片",
        "body_part": "胸部",  # a coded OBX value: its text, as for lab results
        "study_at": shanghai(2024, 5, 20, 14, 0),
        "reported_at": shanghai(2024, 5, 20, 14, 25),
        "report_status": "F",
        "report_text": "左侧胸腔可见无肺纹理透亮区，左肺压缩约40%。\n"
                       "纵隔向右侧移位，膈肌未见异常。",
        "impression": "左侧气胸（肺压缩约40%），已电话通知临床。",
        "critical_finding": True,
        "radiologist_id": "R3001",
        "radiologist_name": "赵影",
        "performing_department": "县医院放射科",
    }
    assert (dx["event_id"], dx["source_system"], dx["occurred_at"]) == (
        event_id("XYY", "PACS20240520001", "OBR1"), "PACS", shanghai(2024, 5, 20, 14, 0))
    assert dx["patient"]["health_card_number"] == "JK1234567890"


@pytest.mark.parametrize("flag", ["HH", "LL", "AA", "PANIC", "C", "CRIT", "危急值", "N~AA"])
def test_critical_flags(flag: str) -> None:
    text = CT_V24.replace("右肺上叶磨玻璃结节，建议6个月后复查。||||||F",
                          f"右肺上叶磨玻璃结节，建议6个月后复查。|||{flag}|||F")
    assert oru(text)[0]["critical_finding"] is True


@pytest.mark.parametrize(("value", "critical"), [("Y", True), ("是", True), ("N", False),
                                                 ("否", False)])
def test_critical_finding_observation(value: str, critical: bool) -> None:
    text = CT_V24 + f"\rOBX|3|ST|CRIT^危急值^L||{value}||||||F"
    event = oru(text)[0]
    assert event["critical_finding"] is critical
    assert value not in (event["report_text"] or "")  # the flag is not report text


@pytest.mark.parametrize("flag", ["H", "A", "N", ""])
def test_ordinary_flags_are_not_critical(flag: str) -> None:
    text = DX_V251.replace("|||AA|||F", f"|||{flag}|||F")
    assert oru(text, "XYY")[0]["critical_finding"] is False


def test_mdm_t02_report_document() -> None:
    (doc,) = mdm(MDM_V251)
    assert {k: doc[k] for k in IMAGING_FIELDS} == {
        "accession_number": "MR20240116007",
        "placer_order_number": "SQ2024002",
        "filler_order_number": "JC2024002",
        "study_instance_uid": None,
        "modality": "MR",  # OBR-24 empty: TXA-2
        "procedure_code": "MR0301",
        "procedure_name": "头颅MR平扫",
        "body_part": None,
        "study_at": shanghai(2024, 1, 16, 9, 30),
        "reported_at": shanghai(2024, 1, 16, 10, 55),  # TXA-4
        "report_status": "F",  # TXA-17 AU (authenticated)
        "report_text": "脑实质内未见异常信号。\n脑室系统未见扩大。",
        "impression": "头颅MR平扫未见明显异常。",
        "critical_finding": False,
        "radiologist_id": "D2002",  # TXA-9
        "radiologist_name": "孙磁",
        "performing_department": None,  # PV1-3 is not read
    }
    assert doc["event_id"] == event_id("RMYY", "MDM0001", "TXA")
    assert doc["occurred_at"] == shanghai(2024, 1, 16, 9, 30)


def test_mdm_without_order_takes_txa_numbers_and_status() -> None:
    txa = seg("TXA", {1: "1", 2: "RAD", 3: "TX", 4: "20240116105500", 9: "D2002^孙^磁",
                      12: "DOC20240116001^RIS", 14: "SQ2024002", 15: "JC2024002", 17: "DI"})
    text = "\r".join(txa if s.startswith("TXA") else s for s in MDM_V251.split("\r")
                     if s[:3] not in ("ORC", "OBR"))
    (doc,) = mdm(text)
    assert (doc["placer_order_number"], doc["filler_order_number"], doc["accession_number"]) == (
        "SQ2024002", "JC2024002", "JC2024002")
    assert (doc["procedure_code"], doc["study_at"], doc["report_status"]) == (None, None, "P")
    assert doc["modality"] is None  # TXA-2 RAD is imaging but no one modality
    assert doc["occurred_at"] == shanghai(2024, 1, 16, 10, 55)  # no study time: the report's


def test_several_reports_in_one_message_each_with_its_study() -> None:
    second = [
        "ORC|RE|SQ2024003|JC2024003",
        seg("OBR", {1: "2", 2: "SQ2024003", 3: "JC2024003", 4: "US0101^腹部超声^RIS",
                    7: "20240115094000", 24: "US", 25: "P"}),
        "ZDS|1.2.840.113619.2.55.3.604688119.868.1234567890.125^RIS^Application^DICOM",
        "OBX|1|TX|&GDT^检查所见^L||肝胆胰脾未见异常。||||||P",
    ]
    ct, us = oru(CT_V24 + "\r" + "\r".join(second))
    assert [ct["event_id"], us["event_id"]] == [event_id("RMYY", "RIS0001", f"OBR{n}")
                                                for n in (1, 2)]
    assert ct["study_instance_uid"] == STUDY_UID
    assert us["study_instance_uid"] == "1.2.840.113619.2.55.3.604688119.868.1234567890.125"
    assert (us["modality"], us["report_status"], us["impression"]) == ("US", "P", None)
    assert us["report_text"] == "肝胆胰脾未见异常。"
    assert us["radiologist_id"] is None and us["accession_number"] == "JC2024003"


def test_a_lone_zds_before_the_obr_still_names_the_study() -> None:
    lines = CT_V24.split("\r")
    zds = lines.pop(5)
    lines.insert(3, zds)  # after PV1, before ORC
    assert oru("\r".join(lines))[0]["study_instance_uid"] == STUDY_UID


def test_escapes_carets_and_unknown_sections_in_report_text() -> None:
    text = CT_V24.replace("OBX|2|TX|19005-8^诊断意见^LN||",
                          "OBX|2|ST|TECH^检查技术^L||层厚5mm A^B \\S\\ 增强\\T\\平扫||||||F\r"
                          "OBX|3|NM|121206^Distance^DCM||6|mm|||||F\r"
                          "OBX|4|TX|19005-8^诊断意见^LN||")
    event = oru(text)[0]
    assert event["report_text"] == (  # an unknown section is text; an NM measurement is not
        "双肺纹理清晰，右肺上叶见一磨玻璃结节，直径约6mm。\n纵隔内未见肿大淋巴结。\n"
        "心影大小形态正常。\n层厚5mm A^B ^ 增强&平扫")
    assert event["impression"] == "右肺上叶磨玻璃结节，建议6个月后复查。"


def test_bad_study_uid_is_kept_with_a_warning_after_the_patient_warnings() -> None:
    text = CT_V24.replace(STUDY_UID, "STUDY-42").replace("11010519491231002X",
                                                         "110105194912310021")
    event = oru(text)[0]
    assert event["study_instance_uid"] == "STUDY-42"
    assert event["quality_warnings"] == [
        "PID[1]-3[2]: ID card check character does not match",
        "ZDS[1]-1: study instance UID is not a DICOM UID",
    ]


def test_accession_from_ipc_before_the_filler_order_number() -> None:
    text = DX_V251.replace("OBX|1|RP|", "IPC|ACC9001|RP9001|" + DX_UID + "|SPS1|DX\rOBX|1|RP|")
    assert oru(text, "XYY")[0]["accession_number"] == "ACC9001"


@pytest.mark.parametrize(("obr32", "person"), [
    ("D2001&王&放射", ("D2001", "王放射")),
    ("D2001^王^放射", ("D2001", "王放射")),  # sent as XCN
    ("王放射", (None, "王放射")),  # a Chinese name alone
    ("R77&Smith&Anna", ("R77", "Smith Anna")),
])
def test_radiologist_forms(obr32: str, person: tuple[str | None, str | None]) -> None:
    event = oru(CT_V24.replace("D2001&王&放射", obr32))[0]
    assert (event["radiologist_id"], event["radiologist_name"]) == person


def _without(text: str, prefix: str) -> str:
    return "\r".join(s for s in text.split("\r") if not s.startswith(prefix))


@pytest.mark.parametrize(("obr24", "expected"), [
    ("CT", True), ("MR", True), ("RAD", True), ("RX", True), ("US", True), ("NMR", True),
    ("PET", True), ("XA", True), ("mg", True),
    ("LAB", False), ("HM", False), ("CH", False), ("", False),
])
def test_imaging_by_diagnostic_service_section(obr24: str, expected: bool) -> None:
    text = _without(_without(DX_V251, "OBX"), "ZDS").replace("|DR|F", f"|{obr24}|F")
    text += "\rOBX|1|TX|R1^报告^L||正常||||||F"
    assert is_imaging_oru(Message.parse(text)) is expected


@pytest.mark.parametrize(("obx", "expected"), [
    ("OBX|1|TX|71020&GDT^Radiology study observation^C4||normal", True),
    ("OBX|1|TX|71020\\T\\IMP^Impression^C4||normal", True),
    ("OBX|1|TX|18782-3^Radiology Study observation^LN||normal", True),
    ("OBX|1|TX|19005-8^Impression^LN||normal", True),
    ("OBX|1|TX|18834-2^Comparison^LN||normal", True),
    ("OBX|1|TX|121071^Finding^DCM||normal", True),
    ("OBX|1|TX|121060^History^DCM||cough", True),
    ("OBX|1|HD|^Study Instance UID||" + STUDY_UID, True),
    (f"OBX|1|RP|UID^影像^L||{STUDY_UID}^PACS^Application^DICOM", True),
    ("OBX|1|RP|PDF^报告单^L||report.pdf^LIS^AP^PDF", False),
    ("OBX|1|TX|REC^标本接收^L||ok", False),  # a lab code, not the &REC suffix
    ("OBX|1|TX|C1^诊断意见^L||ok", False),  # names sort sections, they do not decide
])
def test_imaging_by_observation(obx: str, expected: bool) -> None:
    text = _without(LIS, "OBX").replace("|LAB|F", "||F") + "\r" + obx
    assert is_imaging_oru(Message.parse(text)) is expected


def test_lis_result_is_not_imaging_and_zds_is() -> None:
    assert is_imaging_oru(Message.parse(LIS)) is False
    assert is_imaging_oru(Message.parse(CT_V24)) is True
    assert is_imaging_oru(Message.parse(DX_V251)) is True
    zds_only = LIS + f"\rZDS|{STUDY_UID}^RIS^Application^DICOM"
    assert is_imaging_oru(Message.parse(zds_only)) is True


def test_dispatcher_sends_lab_to_the_lab_mapper() -> None:
    lis = Message.parse(LIS)
    assert map_oru(lis, facility_id="RMYY", received_at=RECEIVED) == map_oru_r01(
        lis, facility_id="RMYY", received_at=RECEIVED)
    ct = Message.parse(CT_V24)
    assert map_oru(ct, facility_id="RMYY", received_at=RECEIVED) == oru(CT_V24)


def arrival(text: str, charset: str = "utf-8") -> Arrival:
    return Arrival(text.encode(charset), "mllp", RECEIVED, "127.0.0.1:5000")


def test_adapter_routes_oru_and_mdm() -> None:
    assert MAPPERS[("ORU", "R01")] == ("oru", map_oru)
    assert MAPPERS[("MDM", "T02")] == ("imaging-report", map_mdm_t02)


def test_lis_oru_through_adapt_gives_lab_results() -> None:
    adapted = adapt(arrival(LIS))
    assert (adapted.code, adapted.error) == ("AA", None)
    assert [e["event_type"] for e in adapted.events] == ["lab-result", "lab-result"]
    assert [r.topic for r in records_for(adapted)][1:] == ["hutong.events.lab-result"] * 2


@pytest.mark.parametrize("text", [CT_V24, DX_V251, MDM_V251])
def test_pacs_messages_through_adapt_give_imaging_reports(text: str) -> None:
    adapted = adapt(arrival(text))
    assert (adapted.code, adapted.error) == ("AA", None)
    assert [e["event_type"] for e in adapted.events] == ["imaging-report"]
    records = records_for(adapted)
    assert [r.topic for r in records] == ["hutong.raw.hl7v2", "hutong.events.imaging-report"]
    assert wire.decode(records[1].value)[1]["impression"] == adapted.events[0]["impression"]


def test_gb18030_report_keeps_its_chinese_text() -> None:
    text = CT_V24.replace("UNICODE UTF-8", "GB 18030-2000")
    adapted = adapt(arrival(text, "gb18030"))
    assert (adapted.code, adapted.charset) == ("AA", "gb18030")
    assert adapted.events[0]["impression"] == "右肺上叶磨玻璃结节，建议6个月后复查。"
    assert adapted.events[0]["report_text"].startswith("双肺纹理清晰")


ORU_ERRORS = [
    ("no PID", _without(CT_V24, "PID"), "100", "PID"),
    ("empty PID-3", CT_V24.replace("P000123^^^RMYY^PI~11010519491231002X^^^GA^SFZH", ""),
     "101", "PID[1]-3"),
    ("no OBR", _without(CT_V24, "OBR"), "100", "OBR"),
    ("no OBX", _without(CT_V24, "OBX"), "100", "OBR[1]"),
    ("empty OBR-4", CT_V24.replace("CT0101^胸部CT平扫^RIS", ""), "101", "OBR[1]-4"),
    ("OBX before OBR", CT_V24.replace("ORC|", "OBX|1|TX|X^检查所见^L||所见\rORC|"), "100",
     "OBX[1]"),
    ("empty OBX-2", CT_V24.replace("OBX|2|TX|", "OBX|2||"), "101", "OBX[2]-2"),
    ("bad OBR-7", CT_V24.replace("20240115091500", "2024-01-15"), "102", "OBR[1]-7"),
    ("bad OBR-22", CT_V24.replace("20240115102000", "20241315102000"), "102", "OBR[1]-22"),
    ("no control id", CT_V24.replace("|RIS0001|", "||"), "101", "MSH-10"),
]
MDM_ERRORS = [
    ("MDM no PID", _without(MDM_V251, "PID"), "100", "PID"),
    ("MDM empty PID-3", MDM_V251.replace("P000123^^^RMYY^PI", ""), "101", "PID[1]-3"),
    ("MDM no TXA", _without(MDM_V251, "TXA"), "100", "TXA"),
    ("MDM no OBX", _without(MDM_V251, "OBX"), "100", "OBX"),
    ("MDM empty OBR-4", MDM_V251.replace("MR0301^头颅MR平扫^RIS", ""), "101", "OBR[1]-4"),
    ("MDM bad TXA-4", MDM_V251.replace("20240116105500", "yesterday"), "102", "TXA[1]-4"),
]
ERRORS = [(oru, *case) for case in ORU_ERRORS] + [(mdm, *case) for case in MDM_ERRORS]


@pytest.mark.parametrize(("mapper", "case", "text", "code", "location"), ERRORS,
                         ids=[e[1] for e in ERRORS])
def test_errors_name_the_place_and_never_a_value(
    mapper: Callable[[str], list[dict[str, Any]]], case: str, text: str, code: str,
    location: str,
) -> None:
    with pytest.raises(ValidationError) as caught:
        mapper(text)
    error = caught.value
    assert (error.code, error.location) == (code, location), case
    for value in ("张三", "11010519491231002X", "P000123", "2024-01-15", "yesterday", "磨玻璃",
                  "脑实质"):
        assert value not in str(error)


def test_content_error_through_adapt_is_ae_with_the_place() -> None:
    adapted = adapt(arrival(CT_V24.replace("CT0101^胸部CT平扫^RIS", "")))
    assert adapted.code == "AE" and adapted.events == []
    assert adapted.error is not None and adapted.error.location == "OBR[1]-4"


def test_naive_received_at_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone aware"):
        map_mdm_t02(Message.parse(MDM_V251), facility_id="X", received_at=datetime(2024, 1, 1))


@pytest.mark.parametrize(("txa2", "extra", "imaging"), [
    ("DI", [], True),  # table 0270 diagnostic imaging
    ("CT", [], True),
    ("DS", [], False),  # discharge summary
    ("OP", [], False),  # operative note
    ("", [], True),  # empty: the OBR and the LOINC report-section OBX say imaging
    ("XYZ", [], True),
])
def test_mdm_is_routed_by_its_document_type(txa2: str, extra: list[str], imaging: bool) -> None:
    text = MDM_V251.replace("|1|MR|TX|", f"|1|{txa2}|TX|")
    assert is_imaging_mdm(Message.parse(text)) is imaging
    if imaging:
        assert mdm(text)
    else:
        with pytest.raises(ValidationError) as caught:
            mdm(text)
        assert (caught.value.location, caught.value.code) == ("TXA[1]-2", "103")
        assert "not an imaging report" in caught.value.reason


def test_mdm_with_no_imaging_cue_at_all_is_not_an_imaging_report() -> None:
    plain = "\r".join(s for s in MDM_V251.replace("|1|MR|TX|", "|1||TX|").split("\r")
                      if s[:3] not in ("ORC", "OBR")).replace("18782-3^检查所见^LN", "NOTE^记录^L"
                                                               ).replace("19005-8^诊断意见^LN",
                                                                         "NOTE2^附注^L")
    assert not is_imaging_mdm(Message.parse(plain))
