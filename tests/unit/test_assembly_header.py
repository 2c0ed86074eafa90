"""The WS/T 500 header of each assembled kind, and a round trip through hutong's own CDA adapter."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from producers.cda.document import map_cda
from sinks.docstore.assembly import assemble, set_id_of
from sinks.docstore.assembly.oids import EMPI_OID
from tests.unit.test_assembly import (
    EMPI,
    GROUPS,
    HEALTH_CARD,
    ID_CARD,
    NAME,
    NS,
    SOURCE_ID,
    one,
    patient,
    tree,
)

ROOT = "/v3:ClinicalDocument"
#: kind -> (C code, templateId, title, body section LOINC codes in order).
KINDS = {
    "outpatient-record": ("C0002", "2.16.156.10011.2.1.1.22", "门(急)诊病历", ["29548-5"]),
    "prescription": ("C0004", "2.16.156.10011.2.1.1.24", "西药处方", ["10160-0"]),
    "imaging-report": ("C0006", "2.16.156.10011.2.1.1.26", "检查报告", ["30954-2"]),
    "lab-report": ("C0007", "2.16.156.10011.2.1.1.27", "检验报告", ["30954-2"]),
    "discharge-summary": ("C0053", "2.16.156.10011.2.1.1.73", "出院小结",
                          ["8648-8", "46241-6", "11535-2"]),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_header_of_each_kind(kind: str) -> None:
    code, template, title, sections = KINDS[kind]
    key, parts = GROUPS[kind]
    document = assemble(key, parts)
    assert document is not None
    assert (document.type_code, document.type_name, document.title) == (code, title, title)
    cda = tree(document.content)
    assert one(cda, f"{ROOT}/v3:realmCode").get("code") == "CN"
    type_id = one(cda, f"{ROOT}/v3:typeId")
    assert (type_id.get("root"), type_id.get("extension")) == ("2.16.840.1.113883.1.3",
                                                               "POCD_MT000040")
    assert one(cda, f"{ROOT}/v3:templateId").get("root") == template
    doc_id = one(cda, f"{ROOT}/v3:id")
    assert (doc_id.get("root"), doc_id.get("extension")) == ("2.16.156.10011.1.1",
                                                             document.document_id)
    doc_code = one(cda, f"{ROOT}/v3:code")
    assert (doc_code.get("code"), doc_code.get("codeSystem")) == (code, "2.16.156.10011.2.4")
    assert one(cda, f"{ROOT}/v3:title").text == title
    assert one(cda, f"{ROOT}/v3:confidentialityCode").get("code") == "N"
    assert one(cda, f"{ROOT}/v3:languageCode").get("code") == "zh-CN"
    assert one(cda, f"{ROOT}/v3:setId").get("extension") == set_id_of(key, kind)
    assert one(cda, f"{ROOT}/v3:versionNumber").get("value") == "1"
    assert cda.xpath(f"{ROOT}/v3:relatedDocument", namespaces=NS) == []
    custodian = one(cda, f"{ROOT}/v3:custodian//v3:representedCustodianOrganization/v3:id")
    assert (custodian.get("root"), custodian.get("extension")) == ("2.16.156.10011.1.5", "F001")
    assert one(cda, f"{ROOT}/v3:author/v3:assignedAuthor/v3:id") is not None
    assert one(cda, f"{ROOT}/v3:author/v3:time").get("value")
    found = cda.xpath(f"{ROOT}/v3:component/v3:structuredBody/v3:component/v3:section/v3:code",
                      namespaces=NS)
    assert [element.get("code") for element in found] == sections
    assert {element.get("codeSystem") for element in found} == {"2.16.840.1.113883.6.1"}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_record_target_ids(kind: str) -> None:
    key, parts = GROUPS[kind]
    document = assemble(key, parts)
    assert document is not None
    cda = tree(document.content)
    role = f"{ROOT}/v3:recordTarget/v3:patientRole"
    ids = {element.get("root"): element.get("extension")
           for element in cda.xpath(f"{role}/v3:id", namespaces=NS)}
    assert ids == {EMPI_OID: EMPI, "2.16.156.10011.2.5.1.4": SOURCE_ID,
                   "2.16.156.10011.1.19": HEALTH_CARD}
    id_card = one(cda, f"{role}/v3:patient/v3:id")
    assert (id_card.get("root"), id_card.get("extension")) == ("2.16.156.10011.1.3", ID_CARD)
    assert one(cda, f"{role}/v3:patient/v3:name").text == NAME
    sex = one(cda, f"{role}/v3:patient/v3:administrativeGenderCode")
    assert (sex.get("code"), sex.get("codeSystem")) == ("1", "2.16.156.10011.2.3.3.4")
    assert one(cda, f"{role}/v3:patient/v3:birthTime").get("value") == "19491231"


def test_replacement_version_names_what_it_replaces() -> None:
    key, parts = GROUPS["discharge-summary"]
    first_version = assemble(key, parts)
    second = assemble(key, parts, version_number=2,
                      replaces_document_id=first_version.document_id if first_version else "")
    assert first_version is not None and second is not None
    assert second.replaces_document_id == first_version.document_id
    cda = tree(second.content)
    assert one(cda, f"{ROOT}/v3:versionNumber").get("value") == "2"
    parent = one(cda, f"{ROOT}/v3:relatedDocument[@typeCode='RPLC']/v3:parentDocument")
    assert one(parent, "v3:id").get("extension") == first_version.document_id
    assert one(parent, "v3:setId").get("extension") == first_version.set_id
    assert one(cda, f"{ROOT}/v3:setId").get("extension") == first_version.set_id
    assert one(cda, f"{ROOT}/v3:id").get("extension") == f"{first_version.set_id}-v2"


@pytest.mark.parametrize(("sex", "code"), [("F", "2"), ("2", "2"), ("U", "0"), ("O", "9"),
                                           ("男", "1"), ("?", None), (None, None)])
def test_sex_as_gbt_2261_1(sex: str | None, code: str | None) -> None:
    key = "rx:F001:RX-8001"
    record = GROUPS["prescription"][1][0][1] | {"patient": patient(sex=sex), "codes": []}
    document = assemble(key, [("medication", record)])
    assert document is not None
    gender = one(tree(document.content), "//v3:patient/v3:administrativeGenderCode")
    assert gender.get("code") == code
    assert gender.get("nullFlavor") == (None if code else "UNK")


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_round_trip_through_the_cda_adapter(kind: str) -> None:
    """What hutong writes, hutong's own CDA adapter reads back as the same registry facts."""
    key, parts = GROUPS[kind]
    document = assemble(key, parts, version_number=3, replaces_document_id="old-id")
    assert document is not None
    [event] = map_cda(document.content, facility_id="F001",
                      received_at=datetime(2026, 3, 9, tzinfo=UTC))
    assert event["quality_warnings"] == []
    assert event["document_id"] == f"2.16.156.10011.1.1^{document.document_id}"
    assert event["document_type_code"] == document.type_code
    assert event["set_id"] == f"2.16.156.10011.1.1^{document.set_id}"
    assert event["version_number"] == 3
    assert event["replaces_document_id"] == "2.16.156.10011.1.1^old-id"
    assert event["effective_time"] == document.effective_time
    assert event["confidentiality_code"] == "N"
    assert event["visit_number"] == document.visit_number
    assert event["custodian_id"] == "F001"
    assert event["author_id"] == document.author_id
    read = event["patient"]
    assert (read["source_patient_id"], read["id_card_number"], read["health_card_number"],
            read["name"], read["sex"], read["birth_date"]) == (
        SOURCE_ID, ID_CARD, HEALTH_CARD, NAME, "1", date(1949, 12, 31))
    assert read["phone"] == "13912345678"
