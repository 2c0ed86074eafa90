"""De-identification of a CDA leaving the hub, and received documents stored as received."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from lxml import etree  # type: ignore[import-untyped, unused-ignore]

from hutong.errors import HL7Error
from producers.cda.document import map_cda
from sinks.docstore.assembly import AssemblyError, assemble, deidentify, received
from sinks.docstore.assembly.deidentify import MASK
from tests.unit.test_assembly import (
    GROUPS,
    IDENTITY,
    NAME,
    NS,
    diagnosis,
    encounter,
    imaging_report,
    one,
    tree,
)

ROLE = "/v3:ClinicalDocument/v3:recordTarget/v3:patientRole"


def _content(kind: str) -> bytes:
    key, parts = GROUPS[kind]
    document = assemble(key, parts)
    assert document is not None
    return document.content


@pytest.mark.parametrize("kind", sorted(GROUPS))
def test_identity_is_gone_and_the_clinical_sections_stay(kind: str) -> None:
    original = _content(kind)
    cleaned = deidentify(original)
    for value in IDENTITY:
        assert value.encode() in original
        assert value.encode() not in cleaned, value
    before, after = tree(original), tree(cleaned)
    assert one(after, f"{ROLE}/v3:patient/v3:birthTime").get("value") == "1949"
    for tag in ("id", "addr", "telecom", "patient/v3:id", "patient/v3:name"):
        masked = after.xpath(f"{ROLE}/v3:{tag}", namespaces=NS)
        assert masked and all(e.get("nullFlavor") == "MSK" and not e.get("extension")
                              for e in masked), tag
    sections = "/v3:ClinicalDocument/v3:component//v3:section"
    assert len(after.xpath(sections, namespaces=NS)) == len(before.xpath(sections,
                                                                         namespaces=NS)) > 0
    body = "//v3:structuredBody"   # unchanged, but for the name in the imaging findings
    assert etree.tostring(one(after, body), encoding="unicode") == etree.tostring(
        one(before, body), encoding="unicode").replace(NAME, MASK)
    gender = one(after, f"{ROLE}/v3:patient/v3:administrativeGenderCode")
    assert gender.get("code") == "1"   # sex and the year of birth stay
    assert deidentify(original) == cleaned                  # deterministic
    assert deidentify(cleaned) == cleaned                   # and idempotent


def test_free_text_naming_the_patient_is_scrubbed() -> None:
    document = assemble("imaging:F001:ACC-7001", [("imaging-report", imaging_report())])
    assert document is not None and NAME.encode() in document.content
    cleaned = deidentify(document.content).decode()
    assert NAME not in cleaned
    assert "***：右下肺结节，边界清。" in cleaned


GUARDED = """<?xml version="1.0" encoding="UTF-8"?>
<ClinicalDocument xmlns="urn:hl7-org:v3">
  <!-- 患者: 李小明 -->
  <recordTarget><patientRole>
    <id root="2.16.156.10011.1.2" extension="HR-555001"/>
    <addr><state>浙江省</state><city>杭州市</city><houseNumber>文一路88号</houseNumber></addr>
    <telecom value="tel:13600001111"/>
    <patient><id root="2.16.156.10011.1.3" extension="330106201001011234"/>
      <name>
        <family>李</family>
        <given>小明</given>
      </name>
      <birthTime value="20100101"/>
      <guardian><id extension="GD-0001"/><telecom value="tel:13700002222"/>
        <guardianPerson><name>李大明</name></guardianPerson></guardian>
    </patient>
    <providerOrganization><id root="2.16.156.10011.1.5" extension="ORG-1"/>
      <name>某县人民医院</name></providerOrganization>
  </patientRole></recordTarget>
  <informant><relatedEntity classCode="PRS"><relatedPerson><name>王芳</name></relatedPerson>
  </relatedEntity></informant>
  <participant typeCode="NOT"><associatedEntity classCode="ECON">
    <id extension="CT-0009"/><telecom value="tel:13800003333"/>
    <associatedPerson><name>李二明</name></associatedPerson></associatedEntity></participant>
  <participant typeCode="REF"><associatedEntity classCode="PROV">
    <id root="2.16.156.10011.1.4" extension="D-7"/>
    <scopingOrganization><name>儿科</name></scopingOrganization></associatedEntity></participant>
  <component><structuredBody><component><section>
    <code code="10164-2" codeSystem="2.16.840.1.113883.6.1"/>
    <text>李大明代诉：李小明发热两天，电话13600001111。</text>
  </section></component></structuredBody></component>
</ClinicalDocument>""".encode()

GONE = ["李小明", "李大明", "李二明", "王芳", "HR-555001", "330106201001011234", "13600001111",
        "13700002222", "13800003333", "文一路88号", "GD-0001", "CT-0009", "20100101"]
KEPT = ["某县人民医院", "ORG-1", "D-7", "儿科", "发热两天", "10164-2", 'value="2010"']


def test_guardian_contacts_and_comments_are_removed() -> None:
    cleaned = deidentify(GUARDED).decode()
    for value in GONE:
        assert value not in cleaned, value
    for value in KEPT:
        assert value in cleaned, value
    assert "<!--" not in cleaned
    assert "***代诉：***发热两天，电话***。" in cleaned


@pytest.mark.parametrize("kind", ["discharge-summary", "outpatient-record", "lab-report"])
def test_the_visit_number_is_masked(kind: str) -> None:
    original = _content(kind)
    number = one(tree(original), "//v3:componentOf/v3:encompassingEncounter/v3:id").get(
        "extension")
    assert number and number.encode() in original
    cleaned = deidentify(original)
    assert number.encode() not in cleaned
    masked = one(tree(cleaned), "//v3:componentOf/v3:encompassingEncounter/v3:id")
    assert masked.get("nullFlavor") == "MSK" and masked.get("extension") is None


@pytest.mark.parametrize(("content", "error"), [
    (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "x">]><ClinicalDocument '
     b'xmlns="urn:hl7-org:v3">&e;</ClinicalDocument>', HL7Error),
    (b"<ClinicalDocument>not in the v3 namespace</ClinicalDocument>", AssemblyError),
    (b"<html/>", AssemblyError),
    (b"not xml", HL7Error),
])
def test_what_cannot_be_deidentified(content: bytes, error: type[Exception]) -> None:
    with pytest.raises(error) as caught:
        deidentify(content)
    assert "ClinicalDocument" not in str(caught.value) or error is AssemblyError


# --- received ----------------------------------------------------------------------------

def _event(content: bytes) -> dict[str, object]:
    [event] = map_cda(content, facility_id="F002", received_at=datetime(2026, 3, 9, tzinfo=UTC))
    return event | {"empi_id": "EMPI-9"}


SENT = ("<?xml version='1.0' encoding='UTF-8'?>\n<ClinicalDocument xmlns='urn:hl7-org:v3'>\r\n"
        "  <realmCode code='CN'/>  <id root='2.16.156.10011.1.1' extension='D-1'/>"
        "<code code='C0007' codeSystem='2.16.156.10011.2.4'/><title>检验报告</title>"
        "<effectiveTime value='20260301080000'/><confidentialityCode code='N'/>"
        "<setId root='2.16.156.10011.1.1' extension='S-1'/><versionNumber value='2'/>"
        "<recordTarget><patientRole><id root='2.16.156.10011.2.5.1.4' extension='P1'/>"
        "</patientRole></recordTarget>"
        "<relatedDocument typeCode='RPLC'><parentDocument>"
        "<id root='2.16.156.10011.1.1' extension='D-0'/></parentDocument></relatedDocument>"
        "</ClinicalDocument>\n\n").encode()


def test_received_keeps_the_bytes_exactly() -> None:
    event = _event(SENT)
    document = received(event)
    assert document.content == SENT                         # CR LF, quotes, trailing blank lines
    assert document.content_sha256 == hashlib.sha256(SENT).hexdigest()
    assert document.kind == "received"
    assert (document.document_id, document.set_id, document.version_number,
            document.replaces_document_id) == ("2.16.156.10011.1.1^D-1", "2.16.156.10011.1.1^S-1",
                                               2, "2.16.156.10011.1.1^D-0")
    assert (document.type_code, document.type_name, document.title) == (
        "C0007", "检验记录", "检验报告")
    assert (document.empi_id, document.facility_id, document.custodian_id) == (
        "EMPI-9", "F002", "F002")
    assert document.effective_time == event["effective_time"]
    assert document.event_ids == (event["event_id"],)
    assert document.sensitivity == frozenset()


def test_received_sensitivity_from_the_codes_inside() -> None:
    parts = [("encounter", encounter()), ("diagnosis", diagnosis(diagnosis_code="B20"))]
    ours = assemble("visit:F001:MZ-0001", parts)
    assert ours is not None
    document = received(_event(ours.content))
    assert document.content == ours.content
    assert document.sensitivity == {"infectious-disease"}
    assert document.confidentiality_code == "R"


@pytest.mark.parametrize(("type_code", "category"), [
    ("HSDB03.02", "infectious-disease"), ("HSDB04.04", "mental-health"), ("C0002", None)])
def test_received_sensitivity_from_the_type(type_code: str, category: str | None) -> None:
    document = received(_event(SENT) | {"document_type_code": type_code})
    assert document.sensitivity == (frozenset({category}) if category else frozenset())


@pytest.mark.parametrize("overrides", [
    {"content_sha256": "0" * 64}, {"content": None}, {"document_id": ""}])
def test_received_refuses_an_event_it_cannot_store_as_received(
        overrides: dict[str, object]) -> None:
    with pytest.raises(AssemblyError) as caught:
        received(_event(SENT) | overrides)
    assert "P1" not in str(caught.value)
