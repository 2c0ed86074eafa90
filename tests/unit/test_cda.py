"""CDA R2 shared documents to ``document`` events, and the safe XML parser under attack.

The fixtures in tests/fixtures/cda are fictional WS/T 500 documents: every person, number and
facility in them is made up.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree  # type: ignore[import-untyped, unused-ignore]

from hutong.errors import HL7Error, HutongError, ValidationError
from producers import cda
from producers.cda import xml as xml_module
from producers.cda.doctypes import DOCUMENT_TYPES, type_of_template
from producers.cda.document import DOCUMENT_KEYS, map_cda
from producers.cda.xml import DEFAULT_MAX_DEPTH, parse_xml, safe_parser
from producers.hl7v2.patient import PATIENT_KEYS
from producers.hl7v2.types import DEFAULT_TZ
from producers.ids import event_id
from schemas import catalog, wire

FIXTURES = Path(__file__).parent.parent / "fixtures" / "cda"
RECEIVED = datetime(2024, 5, 20, 8, 30, tzinfo=UTC)
TOPIC = "hutong.events.document"
PLUS8 = timezone(timedelta(hours=8))

#: ADR 0001, written out again so a change to either side is noticed.
ADR_HEADER = ["event_id", "event_type", "facility_id", "source_system", "message_control_id",
              "source_patient_id", "empi_id", "occurred_at", "received_at", "patient",
              "quality_warnings", "map_version", "codes", "unmapped"]

OUTPATIENT_ID = "2.16.156.10011.1.1^CYYY-MZBL-20240115-000123"
LAB_ID = "2.16.156.10011.1.1^HXQYY-JY-20240520-0042"
ID_CARD_WHERE = "recordTarget/patientRole/patient/id[@root='2.16.156.10011.1.3']"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def edit(payload: bytes, old: str, new: str) -> bytes:
    """``payload`` with ``old`` replaced once; fails when ``old`` is not there."""
    text = payload.decode("utf-8")
    assert text.count(old) == 1, old
    return text.replace(old, new).encode("utf-8")


def one(payload: bytes, facility: str = "CYYY", **kwargs: Any) -> dict[str, Any]:
    events = map_cda(payload, facility_id=facility, received_at=RECEIVED, **kwargs)
    assert len(events) == 1
    return events[0]


OUTPATIENT = fixture("C0002-outpatient.xml")
LAB = fixture("C0007-lab-report.xml")
LAB_V2 = fixture("C0007-lab-report-v2.xml")


# --- the mapping --------------------------------------------------------------------------------

def test_outpatient_record_every_field() -> None:
    event = one(OUTPATIENT, source_system="EMR")
    assert event == {
        "event_id": event_id("CYYY", OUTPATIENT_ID, "DOC"),
        "event_type": "document",
        "facility_id": "CYYY",
        "source_system": "EMR",
        "message_control_id": OUTPATIENT_ID,
        "source_patient_id": "P000123",
        "empi_id": None,
        "occurred_at": datetime(2024, 1, 15, 9, 30, tzinfo=DEFAULT_TZ),
        "received_at": RECEIVED,
        "patient": {
            "source_patient_id": "P000123",
            "identifiers": [
                {"value": "P000123", "type": "PI", "authority": "2.16.156.10011.2.5.1.4"},
                {"value": "MZ0099881", "type": None, "authority": "2.16.156.10011.1.11"},
                {"value": "JK1101050000123", "type": "HC", "authority": "2.16.156.10011.1.19"},
                {"value": "11010519491231002X", "type": "NI", "authority": "2.16.156.10011.1.3"},
            ],
            "id_card_number": "11010519491231002X",
            "health_card_number": "JK1101050000123",
            "name": "张三",
            "sex": "1",
            "birth_date": date(1949, 12, 31),
            "phone": "13800000000",
            "address": "北京市朝阳区建外街道建国路1号院3号楼201室",
        },
        "quality_warnings": [],
        "map_version": None,
        "codes": [],
        "unmapped": [],
        "document_id": OUTPATIENT_ID,
        "document_type_code": "C0002",
        "document_type_name": "门(急)诊病历",
        "document_code": "C0002",
        "title": "门(急)诊病历",
        "effective_time": datetime(2024, 1, 15, 9, 30, tzinfo=DEFAULT_TZ),
        "confidentiality_code": "N",
        "set_id": OUTPATIENT_ID,
        "version_number": 1,
        "replaces_document_id": None,
        "author_id": "D0457",
        "author_name": "赵医生",
        "custodian_id": "121101054000011172",
        "custodian_name": "朝阳区第一人民医院",
        "visit_number": "JZ20240115000456",
        "content_type": "text/xml",
        "content": OUTPATIENT,
        "content_sha256": hashlib.sha256(OUTPATIENT).hexdigest(),
        "practitioner_id": None,
        "practitioner_status": None,
    }
    assert event["effective_time"].utcoffset() == timedelta(hours=8)


def test_lab_report_every_field() -> None:
    event = one(LAB, facility="HXQYY")
    assert {k: event[k] for k in ADR_HEADER if k != "patient"} == {
        "event_id": event_id("HXQYY", LAB_ID, "DOC"),
        "event_type": "document",
        "facility_id": "HXQYY",
        "source_system": None,
        "message_control_id": LAB_ID,
        "source_patient_id": "ZY20240088",  # 住院号; report, request and specimen ids skipped
        "empi_id": None,
        "occurred_at": datetime(2024, 5, 20, 14, 30, 15, tzinfo=PLUS8),
        "received_at": RECEIVED,
        "quality_warnings": [
            f"{ID_CARD_WHERE}: ID card check character does not match",
            "recordTarget/patientRole/patient/birthTime: birth date is not precise to the day",
        ],
        "map_version": None,
        "codes": [],
        "unmapped": [],
    }
    assert event["patient"] == {
        "source_patient_id": "ZY20240088",
        "identifiers": [
            {"value": "ZY20240088", "type": None, "authority": "2.16.156.10011.1.12"},
            {"value": "120109197706015516", "type": "NI", "authority": "2.16.156.10011.1.3"},
        ],
        "id_card_number": "120109197706015516",  # kept as sent, the bad check character too
        "health_card_number": None,
        "name": "李建国",  # <family>李</family><given>建国</given>
        "sex": "1",
        "birth_date": date(1977, 6, 1),
        "phone": "022-12345678",
        "address": None,
    }
    assert {k: event[k] for k in DOCUMENT_KEYS} == {
        "document_id": LAB_ID,
        "document_type_code": "C0007",
        "document_type_name": "检验记录",
        "document_code": "C0007",
        "title": "检验报告",
        "effective_time": datetime(2024, 5, 20, 14, 30, 15, tzinfo=PLUS8),
        "confidentiality_code": "R",
        "set_id": "2.16.156.10011.1.1^HXQYY-JY-20240520-SET42",
        "version_number": 1,
        "replaces_document_id": None,
        "author_id": "JY0031",
        "author_name": "孙检验",
        "custodian_id": "12120109400002224L",
        "custodian_name": "河西区人民医院",
        "visit_number": None,  # encompassingEncounter without an id
        "content_type": "text/xml",
        "content": LAB,
        "content_sha256": hashlib.sha256(LAB).hexdigest(),
        "practitioner_id": None,
        "practitioner_status": None,
    }


def test_replacement_version_shares_the_set_and_gets_its_own_event() -> None:
    first, second = one(LAB), one(LAB_V2)
    assert second["document_id"] == LAB_ID + "-V2"
    assert (second["set_id"], second["version_number"]) == (first["set_id"], 2)
    assert second["replaces_document_id"] == first["document_id"]
    assert second["event_id"] == event_id("CYYY", LAB_ID + "-V2", "DOC") != first["event_id"]
    assert second["effective_time"] == datetime(2024, 5, 20, 16, 10, 0, 250000, tzinfo=PLUS8)
    assert second["patient"] == first["patient"]
    assert second["content"] == LAB_V2


@pytest.mark.parametrize("payload", [OUTPATIENT, LAB, LAB_V2])
def test_events_have_the_adr_keys_and_fit_the_schema(payload: bytes) -> None:
    event = one(payload)
    fields = [f["name"] for f in json.loads(catalog.for_topic(TOPIC).schema_str)["fields"]]
    assert list(event) == ADR_HEADER + list(DOCUMENT_KEYS) == fields
    assert tuple(event["patient"]) == PATIENT_KEYS
    entry, decoded = wire.decode(wire.encode(catalog.for_topic(TOPIC), event))
    assert entry.name == "document"
    assert decoded["content"] == payload
    assert decoded["effective_time"] == event["effective_time"]
    assert decoded["patient"]["identifiers"] == event["patient"]["identifiers"]


def test_a_resent_document_gets_the_same_event_id() -> None:
    again = map_cda(OUTPATIENT, facility_id="CYYY", received_at=RECEIVED + timedelta(hours=3))
    assert again[0]["event_id"] == one(OUTPATIENT)["event_id"]
    assert one(OUTPATIENT, facility="OTHER")["event_id"] != one(OUTPATIENT)["event_id"]


def test_gb18030_document_is_read_and_kept_byte_for_byte() -> None:
    text = OUTPATIENT.decode("utf-8").replace('encoding="UTF-8"', 'encoding="GB18030"')
    payload = text.encode("gb18030")
    event = one(payload)
    assert (event["patient"]["name"], event["custodian_name"]) == ("张三", "朝阳区第一人民医院")
    assert event["content"] == payload
    assert event["content_sha256"] == hashlib.sha256(payload).hexdigest()


def test_received_at_must_be_aware() -> None:
    with pytest.raises(ValueError, match="timezone aware"):
        map_cda(OUTPATIENT, facility_id="CYYY", received_at=datetime(2024, 1, 1))


# --- document type ------------------------------------------------------------------------------

def test_the_type_tables() -> None:
    assert len([c for c in DOCUMENT_TYPES if c.startswith("C")]) == 53
    assert (DOCUMENT_TYPES["C0001"], DOCUMENT_TYPES["C0053"]) == ("病历概要", "出院小结")
    assert DOCUMENT_TYPES["HSDB04.01"] == "高血压患者随访服务"
    assert type_of_template("2.16.156.10011.2.1.1.21") == "C0001"
    assert type_of_template("2.16.156.10011.2.1.1.73") == "C0053"
    assert type_of_template("2.16.156.10011.2.1.1.12") is None  # WS/T 483: by code only
    assert type_of_template("2.16.156.10011.2.1.1.74") is None


LOINC_CODE = '<code code="34133-9" codeSystem="2.16.840.1.113883.6.1" codeSystemName="LOINC"/>'
C0002_CODE = ('<code code="C0002" codeSystem="2.16.156.10011.2.4" '
              'codeSystemName="卫生信息共享文档规范编码体系"/>')
TEMPLATE = '<templateId root="2.16.156.10011.2.1.1.22"/>'


@pytest.mark.parametrize(
    ("edits", "code", "name", "document_code", "warnings"),
    [
        ([(C0002_CODE, LOINC_CODE)], "C0002", "门(急)诊病历", "34133-9", []),  # by templateId
        ([(C0002_CODE, '<code code="C0002"/>')], "C0002", "门(急)诊病历", "C0002", []),
        ([(TEMPLATE, '<templateId root="2.16.156.10011.2.1.1.27"/>')], "C0002", "门(急)诊病历",
         "C0002",
         ["ClinicalDocument/templateId: names document type C0007, the code says C0002"]),
        ([(TEMPLATE, ""), (C0002_CODE, C0002_CODE.replace("C0002", "HSDB04.01"))],
         "HSDB04.01", "高血压患者随访服务", "HSDB04.01", []),
        ([(TEMPLATE, ""), (C0002_CODE, C0002_CODE.replace("C0002", "C0099"))], "C0099", None,
         "C0099", ["ClinicalDocument/code: document type is not in the WS/T 500 or WS/T 483 "
                   "tables"]),
    ],
)
def test_document_type_rule(edits: list[tuple[str, str]], code: str, name: str | None,
                            document_code: str, warnings: list[str]) -> None:
    payload = OUTPATIENT
    for old, new in edits:
        payload = edit(payload, old, new)
    event = one(payload)
    assert (event["document_type_code"], event["document_type_name"]) == (code, name)
    assert event["document_code"] == document_code
    assert event["quality_warnings"] == warnings


@pytest.mark.parametrize(
    ("code", "error_code"),
    [(LOINC_CODE, "103"), ("", "101"), ('<code code="C0002" codeSystem="1.2.3"/>', "103")],
)
def test_unrecognised_document_type_is_refused(code: str, error_code: str) -> None:
    payload = edit(edit(OUTPATIENT, TEMPLATE, ""), C0002_CODE, code)
    with pytest.raises(ValidationError) as caught:
        one(payload)
    assert (caught.value.code, caught.value.location) == (error_code, "ClinicalDocument/code")


# --- what a document must have ------------------------------------------------------------------

DOC_ID = '<id root="2.16.156.10011.1.1" extension="CYYY-MZBL-20240115-000123"/>'
EFFECTIVE = '<effectiveTime value="20240115093000"/>'


@pytest.mark.parametrize(
    ("old", "new", "code", "location", "reason"),
    [
        (DOC_ID, "", "101", "ClinicalDocument/id", "no id"),
        (DOC_ID, '<id nullFlavor="NI"/>', "101", "ClinicalDocument/id", "no id"),
        (EFFECTIVE, "", "101", "ClinicalDocument/effectiveTime/@value", "no effectiveTime"),
        (EFFECTIVE, '<effectiveTime value="2024-01-15 09:30"/>', "102",
         "ClinicalDocument/effectiveTime/@value", "not a valid timestamp"),
        (EFFECTIVE, '<effectiveTime value="20240230093000"/>', "102",
         "ClinicalDocument/effectiveTime/@value", "not a real calendar date"),
        (EFFECTIVE, '<effectiveTime value="20240115093000+2500"/>', "102",
         "ClinicalDocument/effectiveTime/@value", "impossible UTC offset"),
        ('xmlns="urn:hl7-org:v3"', 'xmlns="urn:hl7-org:v2"', "100", "ClinicalDocument",
         "not in the urn:hl7-org:v3 namespace"),
    ],
)
def test_missing_or_bad_header_parts(old: str, new: str, code: str, location: str,
                                     reason: str) -> None:
    with pytest.raises(ValidationError) as caught:
        one(edit(OUTPATIENT, old, new))
    assert (caught.value.code, caught.value.location) == (code, location)
    assert reason in caught.value.reason


def test_document_id_without_extension_is_the_root() -> None:
    payload = edit(OUTPATIENT, DOC_ID, '<id root="2.16.156.10011.1.1.2.987654"/>')
    assert one(payload)["document_id"] == "2.16.156.10011.1.1.2.987654"


@pytest.mark.parametrize("payload", [
    b'<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><body/></html>',
    b"<ClinicalDocument/>",
    b'<levelone xmlns="urn:hl7-org:v3"/>',
])
def test_a_root_that_is_not_a_clinical_document(payload: bytes) -> None:
    with pytest.raises(ValidationError) as caught:
        one(payload)
    assert (caught.value.code, caught.value.location) == ("100", "ClinicalDocument")


def test_no_record_target_or_no_patient_id() -> None:
    start, end = OUTPATIENT.index(b"<recordTarget"), OUTPATIENT.index(b"</recordTarget>") + 15
    with pytest.raises(ValidationError, match="recordTarget/patientRole") as caught:
        one(OUTPATIENT[:start] + OUTPATIENT[end:])
    assert caught.value.code == "101"
    payload = LAB
    for old in ('<id root="2.16.156.10011.1.12" extension="ZY20240088"/>',
                '<id root="2.16.156.10011.1.3" extension="120109197706015516"/>'):
        payload = edit(payload, old, "")
    with pytest.raises(ValidationError) as caught:
        one(payload)  # only report, request and specimen numbers are left
    assert (caught.value.code, caught.value.location) == ("101", "recordTarget/patientRole/id")


def test_version_number_that_is_not_an_integer_is_a_warning() -> None:
    for value in ("v2", "99999999999"):
        event = one(edit(OUTPATIENT, '<versionNumber value="1"/>',
                         f'<versionNumber value="{value}"/>'))
        assert event["version_number"] is None
        assert event["quality_warnings"] == [
            "ClinicalDocument/versionNumber: version number is not a 32-bit integer"]


# --- the patient --------------------------------------------------------------------------------

ROLE_IDS = """<id root="2.16.156.10011.2.5.1.4" extension="P000123"/>
      <!-- 门（急）诊号标识 -->
      <id root="2.16.156.10011.1.11" extension="MZ0099881"/>
      <!-- 健康卡号 -->
      <id root="2.16.156.10011.1.19" extension="JK1101050000123"/>"""
PATIENT_ID = '<id root="2.16.156.10011.1.3" extension="11010519491231002X"/>'


@pytest.mark.parametrize(
    ("role_ids", "patient_id", "source"),
    [
        ('<id root="2.16.156.10011.1.11" extension="MZ1"/>'
         '<id root="2.16.156.10011.2.5.1.4" extension="HIS1"/>', PATIENT_ID, "HIS1"),
        ('<id root="2.16.156.10011.1.12" extension="ZY1"/>'
         '<id root="1.2.156.112604.1.2.1" extension="LOCAL7"/>', PATIENT_ID, "LOCAL7"),
        ('<id root="2.16.156.10011.1.11" extension="MZ1"/>'
         '<id root="2.16.156.10011.1.13" extension="BA1"/>', PATIENT_ID, "BA1"),
        ('<id root="2.16.156.10011.1.11" extension="MZ1"/>'
         '<id root="2.16.156.10011.1.12" extension="ZY1"/>', PATIENT_ID, "ZY1"),
        ('<id root="2.16.156.10011.1.19" extension="JK1"/>', PATIENT_ID, "11010519491231002X"),
        ('<id root="2.16.156.10011.1.2" extension="DA1"/>'
         '<id root="2.16.156.10011.1.19" extension="JK1"/>', "", "JK1"),
        ('<id root="2.16.156.10011.1.2" extension="DA1"/>', "", "DA1"),
        ('<id root="2.16.156.10011.1.11" nullFlavor="UNK" extension="MZ1"/>'
         '<id root="2.16.156.10011.1.11" extension=" "/>', PATIENT_ID, "11010519491231002X"),
    ],
)
def test_source_patient_id_rule(role_ids: str, patient_id: str, source: str) -> None:
    payload = edit(edit(OUTPATIENT, ROLE_IDS, role_ids), PATIENT_ID, patient_id)
    assert one(payload)["source_patient_id"] == source


@pytest.mark.parametrize(
    ("value", "number", "warning"),
    [
        ("110105194912310021", "110105194912310021", "ID card check character does not match"),
        ("ABC", "ABC", "ID card number is not a valid GB 11643 number"),
        ("110105491231002", "11010519491231002X", "15-digit ID card number upgraded to 18 digits"),
        ("11010519491231002x", "11010519491231002X", None),
    ],
)
def test_id_card_warnings_name_the_place_not_the_value(value: str, number: str,
                                                       warning: str | None) -> None:
    id_card = f'<id root="2.16.156.10011.1.3" extension="{value}"/>'
    event = one(edit(OUTPATIENT, PATIENT_ID, id_card))
    assert event["patient"]["id_card_number"] == number
    assert event["quality_warnings"] == ([f"{ID_CARD_WHERE}: {warning}"] if warning else [])
    assert all(value not in w for w in event["quality_warnings"])


def test_id_card_in_patient_role_id() -> None:
    payload = edit(edit(OUTPATIENT, PATIENT_ID, ""), ROLE_IDS,
                   '<id root="2.16.156.10011.1.3" extension="110105194912310021"/>')
    event = one(payload)
    assert event["source_patient_id"] == "110105194912310021"
    assert event["quality_warnings"] == [
        "recordTarget/patientRole/id[@root='2.16.156.10011.1.3']: "
        "ID card check character does not match"]


@pytest.mark.parametrize(
    ("old", "new", "key", "value"),
    [
        ("<name>张三</name>", "<name><family>Smith</family><given>John</given></name>", "name",
         "Smith John"),
        ("<name>张三</name>", "<name><family>欧阳</family><given>修文</given></name>", "name",
         "欧阳修文"),
        ("<name>张三</name>", '<name nullFlavor="UNK"/>', "name", None),
        ('<telecom value="tel:13800000000"/>',
         '<telecom value="mailto:a@example.cn"/><telecom value="TEL:+86-10-12345678"/>', "phone",
         "+86-10-12345678"),
        ('<telecom value="tel:13800000000"/>', '<telecom value="mailto:a@example.cn"/>', "phone",
         None),
        ('<administrativeGenderCode code="1"',
         '<administrativeGenderCode nullFlavor="UNK" code="1"', "sex", None),
        ('<birthTime value="19491231"/>', '<birthTime value="194912311030+0800"/>', "birth_date",
         date(1949, 12, 31)),
        ('<birthTime value="19491231"/>', "", "birth_date", None),
    ],
)
def test_patient_details(old: str, new: str, key: str, value: object) -> None:
    event = one(edit(OUTPATIENT, old, new))
    assert event["patient"][key] == value
    assert event["quality_warnings"] == []


ADDR_START, ADDR_END = '<addr use="H">', "</addr>"


@pytest.mark.parametrize(
    ("addr", "address"),
    [
        ("<city>天津市</city><state>天津市</state><county>河西区</county>"
         "<streetName>幸福路12号</streetName>", "天津市河西区幸福路12号"),
        ("<streetAddressLine>上海市徐汇区漕溪北路88号</streetAddressLine>",
         "上海市徐汇区漕溪北路88号"),
        ("广东省广州市天河区体育西路1号", "广东省广州市天河区体育西路1号"),
        ("<houseNumber>12</houseNumber><streetName>Main St</streetName><city>Macau</city>",
         "Macau, Main St, 12"),
        ("<postalCode>100022</postalCode>", None),
    ],
)
def test_address_in_chinese_order(addr: str, address: str | None) -> None:
    start = OUTPATIENT.index(ADDR_START.encode()) + len(ADDR_START)
    end = OUTPATIENT.index(ADDR_END.encode())
    payload = OUTPATIENT[:start] + addr.encode() + OUTPATIENT[end:]
    assert one(payload)["patient"]["address"] == address


def test_bad_birth_time_is_a_warning() -> None:
    event = one(edit(OUTPATIENT, '<birthTime value="19491231"/>',
                     '<birthTime value="19491331"/>'))
    assert event["patient"]["birth_date"] is None
    assert event["quality_warnings"] == [
        "recordTarget/patientRole/patient/birthTime: birth date is not a valid HL7 date"]


def test_errors_and_warnings_never_carry_patient_values() -> None:
    payload = edit(edit(OUTPATIENT, EFFECTIVE, '<effectiveTime value="张三"/>'),
                   PATIENT_ID, '<id root="2.16.156.10011.1.3" extension="张三X"/>')
    with pytest.raises(ValidationError) as caught:
        one(payload)
    assert "张三" not in str(caught.value)
    garbled = OUTPATIENT.replace("<name>张三</name>".encode(), "<name>张三</nam>".encode())
    with pytest.raises(HL7Error) as caught:
        one(garbled)
    assert "张三" not in str(caught.value)


# --- the safe parser ----------------------------------------------------------------------------

def test_parse_xml_returns_the_root_without_comments() -> None:
    root = parse_xml(b'<?xml version="1.0"?><!-- c --><a><!-- c --><?pi x?><b/></a>',
                     max_bytes=1000, where="test")
    assert root.tag == "a" and [child.tag for child in root] == ["b"]


def test_parse_xml_bounds_are_inclusive() -> None:
    data = b"<a/>"
    assert parse_xml(data, max_bytes=4, where="test").tag == "a"
    with pytest.raises(HL7Error, match="more than the 3-byte limit") as caught:
        parse_xml(data, max_bytes=3, where="test")
    assert (caught.value.code, caught.value.location) == ("207", "test")
    nested = b"<a>" * 10 + b"</a>" * 10
    assert parse_xml(nested, max_bytes=100, where="test", max_depth=10).tag == "a"
    with pytest.raises(HL7Error, match="deeper than 9 elements"):
        parse_xml(nested, max_bytes=100, where="test", max_depth=9)


LOL = ('<!ENTITY lol "lol">' + "".join(
    f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
    for i in range(1, 10)))
CDA_HEAD = '<ClinicalDocument xmlns="urn:hl7-org:v3">'


def doctyped(declaration: str, body: str = "") -> bytes:
    """A ClinicalDocument behind ``<!DOCTYPE ClinicalDocument{declaration}>``."""
    return (f'<?xml version="1.0"?><!DOCTYPE ClinicalDocument{declaration}>'
            f"{CDA_HEAD}{body}</ClinicalDocument>").encode()


def hostile_cases() -> list[Any]:
    return [
        pytest.param(doctyped(' [<!ENTITY xxe SYSTEM "file:///etc/passwd">]',
                              "<title>&xxe;</title>"), "DOCTYPE", id="xxe-file"),
        pytest.param(doctyped(' [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]'), "DOCTYPE",
                     id="xxe-parameter-entity"),
        pytest.param(doctyped(f" [{LOL}]", "<title>&lol9;</title>"), "DOCTYPE",
                     id="billion-laughs"),
        pytest.param(doctyped(f" [{LOL}]", '<title value="&lol9;"/>'), "DOCTYPE",
                     id="billion-laughs-attribute"),
        pytest.param(doctyped(' SYSTEM "http://127.0.0.1:9/cda.dtd"'), "DOCTYPE",
                     id="external-dtd"),
        pytest.param(doctyped("").decode().replace('version="1.0"',
                                                   'version="1.0" encoding="UTF-16"')
                     .encode("utf-16"), "DOCTYPE", id="doctype-utf16"),
        pytest.param(CDA_HEAD.encode() + b'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude"'
                     b' href="file:///etc/passwd" parse="text"/></ClinicalDocument>', "XInclude",
                     id="xinclude"),
        pytest.param(b'<xi:include xmlns:xi="http://www.w3.org/2003/XInclude" href="x.xml"/>',
                     "XInclude", id="xinclude-2003-root"),
        pytest.param(b"<a>" * 1000 + b"</a>" * 1000, "nesting deeper than 256", id="deep-1000"),
        pytest.param(b"<a>" * 200 + b"</a>" * 200,
                     f"nests deeper than {DEFAULT_MAX_DEPTH} elements", id="deep-200"),
        pytest.param(CDA_HEAD.encode() + b"<title>" + b"x" * 9 * 1024 * 1024 + b"</title>",
                     "more than the 8388608-byte limit", id="oversized"),
        pytest.param(b"\x00\xff\xfe\x13garbage", "not well-formed", id="garbage"),
        pytest.param(b"MSH|^~\\&|HIS|RMYY|||20240115||ADT^A01|1|P|2.4\r", "not well-formed",
                     id="hl7v2"),
        pytest.param(b"   \n", "empty", id="blank"),
        pytest.param(b"<v3:ClinicalDocument/>", "not well-formed (undefined namespace)",
                     id="undeclared-prefix"),
        pytest.param(CDA_HEAD.encode() + b"<title>", "not well-formed", id="truncated"),
        pytest.param(CDA_HEAD.encode() + b"<title>&undefined;</title></ClinicalDocument>",
                     "not well-formed", id="undefined-entity"),
    ]


@pytest.mark.timeout(30)  # a guard against a hang, not a speed assertion
@pytest.mark.parametrize(("payload", "reason"), hostile_cases())
def test_hostile_xml_is_refused_with_a_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(HL7Error) as caught:
        map_cda(payload, facility_id="CYYY", received_at=RECEIVED)
    assert type(caught.value) is HL7Error  # not a ValidationError: the XML was not read
    assert reason in caught.value.reason
    assert caught.value.location is not None
    assert caught.value.location.startswith("CDA document")
    assert "root:" not in str(caught.value)  # nothing of /etc/passwd


@pytest.mark.timeout(30)
def test_external_entities_are_never_opened(tmp_path: Path) -> None:
    """A FIFO as every external target: opening it would block until the timeout."""
    fifo = tmp_path / "entity"
    os.mkfifo(fifo)
    doc = (f'<?xml version="1.0"?><!DOCTYPE a SYSTEM "{fifo.as_uri()}" ['
           f'<!ENTITY % p SYSTEM "{fifo.as_uri()}"> %p;'
           f'<!ENTITY x SYSTEM "{fifo.as_uri()}">]><a>&x;</a>').encode()
    with pytest.raises(HL7Error, match="DOCTYPE"):
        parse_xml(doc, max_bytes=10_000, where="test")
    parser = safe_parser()  # the parser alone, without the refusal at the root element
    parser.feed(doc)
    assert parser.close().text is None  # &x; not substituted either


@pytest.mark.timeout(30)
def test_the_resolver_guards_even_when_an_option_makes_libxml2_load(tmp_path: Path) -> None:
    """``collect_ids=False`` makes libxml2 open external targets; the resolver answers instead."""

    class Recorder(etree.Resolver):  # type: ignore[misc, unused-ignore]
        def __init__(self) -> None:
            super().__init__()
            self.asked: list[str] = []

        def resolve(self, url: str, pubid: str, context: Any) -> Any:
            self.asked.append(url)
            return self.resolve_string("", context)

    options = {"resolve_entities": False, "no_network": True, "load_dtd": False,
               "collect_ids": False}
    probe = etree.XMLParser(**options)
    probe.resolvers.add(recorder := Recorder())
    etree.fromstring(b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY % p SYSTEM '
                     b'"file:///nonexistent/p.ent"> %p;]><a/>', probe)
    assert recorder.asked == ["file:///nonexistent/p.ent"]  # libxml2 would have opened it
    fifo = tmp_path / "entity"
    os.mkfifo(fifo)
    guarded = etree.XMLParser(**options)
    guarded.resolvers.add(xml_module._RefuseEveryLoad())
    doc = f'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY % p SYSTEM "{fifo.as_uri()}"> %p;]><a/>'
    assert etree.fromstring(doc.encode(), guarded).tag == "a"  # returned: the FIFO not opened


# --- properties ---------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_raise_only_hutong_errors(payload: bytes) -> None:
    try:
        events = map_cda(payload, facility_id="CYYY", received_at=RECEIVED)
    except HutongError:
        return
    wire.encode(catalog.for_topic(TOPIC), events[0])


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([OUTPATIENT, LAB, LAB_V2]), st.data())
def test_damaged_documents_raise_only_hutong_errors(payload: bytes, data: st.DataObject) -> None:
    start = data.draw(st.integers(0, len(payload)))
    end = data.draw(st.integers(start, min(len(payload), start + 64)))
    patch = data.draw(st.binary(max_size=16) | st.sampled_from(
        [b"", b"<", b">", b"&", b'"', b"</id>", b"<id/>", b"\xe5", b"<!DOCTYPE a>"]))
    damaged = payload[:start] + patch + payload[end:]
    try:
        events = map_cda(damaged, facility_id="CYYY", received_at=RECEIVED)
    except HutongError:
        return
    wire.encode(catalog.for_topic(TOPIC), events[0])  # what maps also fits the schema


def test_package_surface() -> None:
    assert cda.__all__ == ["map_cda", "parse_xml"]
    assert cda.map_cda is map_cda and cda.parse_xml is parse_xml
