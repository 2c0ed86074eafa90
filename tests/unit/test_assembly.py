"""Document assembly (sinks.docstore.assembly): the public surface, group keys, ids,
determinism, and when a group is not yet a document.

This module also holds the event factory the other ``test_assembly_*`` modules use:
events shaped as the std topics carry them (decoded Avro: aware datetimes, ``patient``
a dict, ``codes`` from code translation).
"""

from __future__ import annotations

import hashlib
import random
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

import sinks.docstore.assembly as assembly
from producers.cda.document import DEFAULT_MAX_BYTES
from producers.cda.xml import Element, parse_xml
from producers.ids import event_id
from sinks.docstore.assembly import (
    AssemblyError,
    assemble,
    document_id_of,
    group_keys,
    set_id_of,
)
from sinks.docstore.model import CDA_MEDIA_TYPE, Part

Event = dict[str, Any]
NS = {"v3": "urn:hl7-org:v3", "xsi": "http://www.w3.org/2001/XMLSchema-instance"}

RECEIVED = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
OBSERVED = datetime(2026, 2, 28, 23, 0, tzinfo=UTC)       # 2026-03-01 07:00 in Beijing
NAME, ID_CARD, HEALTH_CARD = "张三丰", "11010519491231002X", "HC-77001122"
PHONE, ADDRESS, EMPI, SOURCE_ID = "13912345678", "北京市东城区某胡同8号", "EMPI-000042", "P90017"
#: Every identifying value of the sample patient.
IDENTITY = (NAME, ID_CARD, HEALTH_CARD, PHONE, ADDRESS, EMPI, SOURCE_ID)


def patient(**overrides: Any) -> dict[str, Any]:
    return {"source_patient_id": SOURCE_ID,
            "identifiers": [{"value": SOURCE_ID, "type": "PI", "authority": "F001"}],
            "id_card_number": ID_CARD, "health_card_number": HEALTH_CARD, "name": NAME,
            "sex": "M", "phone": PHONE, "address": ADDRESS,
            "birth_date": date(1949, 12, 31)} | overrides


def header(event_type: str, control_id: str, position: str, **overrides: Any) -> Event:
    """The ADR 0001 header of a linked, translated std event."""
    event: Event = {
        "event_id": event_id("F001", control_id, position), "event_type": event_type,
        "facility_id": "F001", "source_system": "HIS", "message_control_id": control_id,
        "source_patient_id": SOURCE_ID, "empi_id": EMPI, "occurred_at": OBSERVED,
        "received_at": RECEIVED, "patient": patient(), "quality_warnings": [],
        "map_version": "builtin-2026-12-05",
        "codes": [{"field": "patient.sex", "system": "GB/T 2261.1", "code": "1",
                   "display": "男性"}],
        "unmapped": [],
    }
    return event | overrides


def lab_result(position: int = 1, control_id: str = "LAB0001", **overrides: Any) -> Event:
    """A serum potassium result (schemas/lab-result.avsc), translated to LOINC 2823-3."""
    event = header("lab-result", control_id, f"OBX{position}", source_system="LIS") | {
        "set_id": position, "placer_order_number": "PO-5001", "filler_order_number": "FO-5001",
        "panel_code": "ELEC", "panel_name": "电解质", "specimen_type": "血清",
        "specimen_collected_at": OBSERVED - timedelta(hours=2), "test_code": "K",
        "test_name": "血钾", "test_system": "L", "value_type": "NM", "value": "6.8",
        "value_numeric": 6.8, "unit": "mmol/L", "reference_range": "3.5-5.5",
        "abnormal_flags": ["HH"], "result_status": "F", "observed_at": OBSERVED,
        "performing_lab": "检验科", "standard_value": 6.8, "standard_unit": "mmol/L",
        "ordering_provider_id": "D-7", "ordering_department": "心内科",
        "visit_number": "ZY-2026-001", "patient_class": "I",
    }
    event["codes"] = [*event["codes"], {"field": "test_code", "system": "LOINC",
                                        "code": "2823-3", "display": "Potassium"}]
    return event | overrides


def imaging_report(control_id: str = "RIS0001", **overrides: Any) -> Event:
    """A final chest CT report whose findings name the patient, as free text may."""
    return header("imaging-report", control_id, "OBR1", source_system="RIS") | {
        "accession_number": "ACC-7001", "placer_order_number": "PO-7001",
        "filler_order_number": "FO-7001", "study_instance_uid": "1.2.156.112605.7001",
        "modality": "CT", "procedure_code": "CT-CHEST", "procedure_name": "胸部CT平扫",
        "body_part": "胸部", "study_at": OBSERVED, "reported_at": OBSERVED + timedelta(hours=1),
        "report_status": "F", "report_text": f"{NAME}：右下肺结节，边界清。",
        "impression": "右下肺结节", "critical_finding": True, "radiologist_id": "R-9",
        "radiologist_name": "王医生", "performing_department": "放射科",
    } | overrides


def medication(position: int = 1, control_id: str = "RX0001", **overrides: Any) -> Event:
    """A prescribed amoxicillin line of prescription RX-8001."""
    return header("medication", control_id, f"ORC{position}") | {
        "action": "prescribe", "order_control": "NW", "placer_order_number": f"PO-800{position}",
        "filler_order_number": None, "prescription_number": "RX-8001", "drug_code": "86900001",
        "drug_name": "阿莫西林胶囊", "drug_system": "YPBM", "dose": 0.5, "dose_unit": "g",
        "dosage_form": "胶囊", "route": "PO", "frequency": "TID", "duration": "7d",
        "duration_days": 7, "quantity": 42.0, "quantity_unit": "粒", "prescribed_at": OBSERVED,
        "dispensed_at": None, "prescriber_id": "D-1", "prescriber_name": "李医生",
        "department": "呼吸内科", "visit_number": "MZ-0001",
    } | overrides


def encounter(control_id: str = "ADT0001", **overrides: Any) -> Event:
    """An outpatient registration (A04) of visit MZ-0001."""
    return header("encounter", control_id, "ENC") | {
        "action": "register", "trigger_event": "A04", "visit_number": "MZ-0001",
        "patient_class": "O", "department_code": "0301", "department_name": "呼吸内科",
        "ward": None, "room": None, "bed": None, "prior_location": None,
        "attending_doctor_id": "D-1", "attending_doctor_name": "李医生", "admit_source": None,
        "admit_reason": "咳嗽三天", "admitted_at": OBSERVED, "discharged_at": None,
        "discharge_disposition": None,
    } | overrides


def diagnosis(position: int = 1, control_id: str = "ADT0001", **overrides: Any) -> Event:
    """The principal diagnosis of visit MZ-0001, translated to ICD-10 国家临床版 2.0."""
    event = header("diagnosis", control_id, f"DG1{position}") | {
        "set_id": position, "diagnosis_code": "J06.9", "diagnosis_system": "I10",
        "diagnosis_name": "急性上呼吸道感染", "diagnosis_type": "F", "priority": 1,
        "diagnosed_at": OBSERVED, "clinician_id": "D-1", "clinician_name": "李医生",
        "visit_number": "MZ-0001",
    }
    event = event | overrides
    event["codes"] = [*event["codes"], {"field": "diagnosis_code",
                                        "system": "ICD-10 国家临床版 2.0",
                                        "code": _clinical(event["diagnosis_code"]),
                                        "display": event["diagnosis_name"]}]
    return event


def _clinical(code: str) -> str:
    category, _, rest = code.partition(".")
    return f"{category}.{(rest or 'x').ljust(3, '0')}"


def inpatient_visit(*extra: Part) -> list[Part]:
    """An admitted and discharged inpatient visit ZY-2026-001 with two diagnoses."""
    stay = {"visit_number": "ZY-2026-001", "patient_class": "I",
            "department_code": "0501", "department_name": "心内科"}
    return [
        ("encounter", encounter("ADT0101", action="admit", trigger_event="A01", **stay)),
        ("encounter", encounter("ADT0102", action="discharge", trigger_event="A03",
                                occurred_at=OBSERVED + timedelta(days=5),
                                discharged_at=OBSERVED + timedelta(days=5),
                                discharge_disposition="1", **stay)),
        ("diagnosis", diagnosis(1, "ADT0101", diagnosis_code="I21.4", diagnosis_type="A",
                                diagnosis_name="急性非ST段抬高型心肌梗死",
                                visit_number="ZY-2026-001")),
        ("diagnosis", diagnosis(2, "ADT0102", diagnosis_code="E11.9", priority=2,
                                diagnosis_name="2型糖尿病", visit_number="ZY-2026-001")),
        ("diagnosis", diagnosis(1, "ADT0102", diagnosis_code="I21.4",
                                diagnosis_name="急性非ST段抬高型心肌梗死",
                                visit_number="ZY-2026-001")),
        *extra,
    ]


def outpatient_visit() -> list[Part]:
    return [("encounter", encounter()), ("diagnosis", diagnosis())]


def lab_report() -> list[Part]:
    return [("lab-result", lab_result(1)),
            ("lab-result", lab_result(2, test_code="NA", test_name="血钠", value="140",
                                      value_numeric=140.0, abnormal_flags=[],
                                      reference_range="135-145", codes=[]))]


def tree(content: bytes) -> Element:
    """The document read back by the project's safe parser."""
    return parse_xml(content, max_bytes=DEFAULT_MAX_BYTES, where="test document")


def one(document: Element, path: str) -> Element:
    found = document.xpath(path, namespaces=NS)
    assert len(found) == 1, f"{path}: {len(found)} matches"
    element: Element = found[0]
    return element


#: Each kind's group: (group key, parts).
GROUPS: dict[str, tuple[str, list[Part]]] = {
    "lab-report": ("lab:F001:FO-5001:", lab_report()),
    "imaging-report": ("imaging:F001:ACC-7001", [("imaging-report", imaging_report())]),
    "prescription": ("rx:F001:RX-8001", [("medication", medication(1)),
                                          ("medication", medication(2, drug_code="86900002",
                                                                    drug_name="布洛芬片"))]),
    "outpatient-record": ("visit:F001:MZ-0001", outpatient_visit()),
    "discharge-summary": ("visit:F001:ZY-2026-001", inpatient_visit()),
}


# --- public surface ----------------------------------------------------------------------

def test_public_names_are_pinned() -> None:
    assert sorted(assembly.__all__) == ["AssemblyError", "assemble", "deidentify",
                                        "document_id_of", "group_keys", "received",
                                        "sensitivity", "set_id_of", "supersedes",
                                        "withdrawn"]
    for name in assembly.__all__:
        assert getattr(assembly, name) is not None


# --- group keys --------------------------------------------------------------------------

GROUP_KEY_CASES = [
    ("lab-result", lab_result(), ["lab:F001:FO-5001:"]),
    ("lab-result", lab_result(message_control_id="LAB0002"), ["lab:F001:FO-5001:"]),
    ("lab-result", lab_result(filler_order_number=None), ["lab:F001:PO-5001:"]),
    ("lab-result", lab_result(filler_order_number=None, placer_order_number=" "),
     ["lab:F001::LAB0001"]),
    ("lab-result", lab_result(facility_id="F:1%"), ["lab:F%3A1%25:FO-5001:"]),
    ("imaging-report", imaging_report(), ["imaging:F001:ACC-7001"]),
    ("imaging-report", imaging_report(accession_number=None), ["imaging:F001:RIS0001"]),
    ("medication", medication(), ["rx:F001:RX-8001"]),
    ("medication", medication(prescription_number=None), ["rx:F001:PO-8001"]),
    ("medication", medication(prescription_number=None, placer_order_number=None),
     ["rx:F001:RX0001"]),
    ("medication", medication(action="cancel", order_control="CA"), ["rx:F001:RX-8001"]),
    ("encounter", encounter(), ["visit:F001:MZ-0001"]),
    ("encounter", encounter(visit_number=None), []),
    ("diagnosis", diagnosis(), ["visit:F001:MZ-0001"]),
    ("diagnosis", diagnosis(visit_number=""), []),
    ("document", header("document", "DOC1", "DOC"), []),
    ("patient", header("patient", "ADT0001", "PAT"), []),
    ("order", header("order", "ORM1", "ORC1"), []),
]


@pytest.mark.parametrize(("schema_name", "record", "expected"), GROUP_KEY_CASES)
def test_group_keys(schema_name: str, record: Event, expected: list[str]) -> None:
    assert group_keys(schema_name, record) == expected


def test_group_key_without_any_number_falls_back_to_the_event_id() -> None:
    record = lab_result(message_control_id=None, filler_order_number=None,
                        placer_order_number=None)
    assert group_keys("lab-result", record) == [f"lab:F001::{record['event_id']}"]


# --- ids and versions --------------------------------------------------------------------

PINNED_SET_ID = "lab-9e909fae-a47d-5510-a33b-1c82a944d392"


def test_set_id_is_stable_prefixed_and_pinned() -> None:
    # uuid5 of the kind and key in DOCUMENT_NAMESPACE: changing either changes every id
    assert set_id_of("lab:F001:FO-5001:", "lab-report") == PINNED_SET_ID
    assert set_id_of("lab:F001:FO-5002:", "lab-report") != PINNED_SET_ID
    for key, kind, prefix in [("imaging:F001:A", "imaging-report", "imaging"),
                              ("rx:F001:R", "prescription", "rx"),
                              ("visit:F001:V", "outpatient-record", "visit"),
                              ("visit:F001:V", "discharge-summary", "visit")]:
        assert re.fullmatch(rf"{prefix}-[0-9a-f]{{8}}(-[0-9a-f]{{4}}){{3}}-[0-9a-f]{{12}}",
                            set_id_of(key, kind))
    assert set_id_of("visit:F001:V", "outpatient-record") != set_id_of("visit:F001:V",
                                                                         "discharge-summary")


@pytest.mark.parametrize(("version", "expected_suffix"), [(1, ""), (2, "-v2"), (17, "-v17")])
def test_document_id_per_version(version: int, expected_suffix: str) -> None:
    key, parts = GROUPS["lab-report"]
    document = assemble(key, parts, version_number=version)
    assert document is not None
    assert document.set_id == set_id_of(key, "lab-report")
    assert document.document_id == set_id_of(key, "lab-report") + expected_suffix
    assert document.document_id == document_id_of(set_id_of(key, "lab-report"), version)
    assert document.version_number == version


@pytest.mark.parametrize("bad", [0, -1])
def test_version_below_one_is_refused(bad: int) -> None:
    key, parts = GROUPS["lab-report"]
    with pytest.raises(AssemblyError, match="version_number"):
        assemble(key, parts, version_number=bad)


@pytest.mark.parametrize("key", ["order:F001:1", "lab", "", "LAB:F001:x:y"])
def test_a_key_that_is_no_group_key_is_refused(key: str) -> None:
    with pytest.raises(AssemblyError, match="prefix"):
        assemble(key, GROUPS["lab-report"][1])


# --- each kind, and determinism ----------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(GROUPS))
def test_each_kind_is_assembled(kind: str) -> None:
    key, parts = GROUPS[kind]
    document = assemble(key, parts)
    assert document is not None
    assert document.kind == kind
    assert document.content_type == CDA_MEDIA_TYPE
    assert document.content_sha256 == hashlib.sha256(document.content).hexdigest()
    assert document.empi_id == EMPI
    assert document.facility_id == "F001" == document.custodian_id
    assert document.event_ids == tuple(sorted({record["event_id"] for _, record in parts}))
    assert document.content.startswith(b"<?xml version='1.0' encoding='UTF-8'?>\n<Clinical")
    tree(document.content)  # the safe parser reads it


@pytest.mark.parametrize("kind", sorted(GROUPS))
def test_same_parts_in_any_order_give_the_same_bytes(kind: str) -> None:
    key, parts = GROUPS[kind]
    reference = assemble(key, parts)
    assert reference is not None
    shuffler = random.Random(20260301)
    for _ in range(6):
        shuffled = [*parts, *shuffler.sample(parts, k=len(parts) // 2 + 1)]  # with repeats
        shuffler.shuffle(shuffled)
        again = assemble(key, shuffled)
        assert again is not None
        assert again.content == reference.content
        assert again.content_sha256 == reference.content_sha256
        assert again == reference


def test_content_depends_on_the_events_not_on_the_clock() -> None:
    key, parts = GROUPS["lab-report"]
    document = assemble(key, parts)
    assert document is not None
    assert document.effective_time == OBSERVED
    assert one(tree(document.content), "/v3:ClinicalDocument/v3:effectiveTime").get(
        "value") == "20260301070000+0800"


def test_parts_of_other_schemas_are_ignored() -> None:
    key, parts = GROUPS["outpatient-record"]
    alone = assemble(key, parts)
    mixed = assemble(key, [*parts, ("lab-result", lab_result()), ("patient", header(
        "patient", "ADT0001", "PAT"))])
    assert alone is not None and mixed is not None
    assert mixed.content == alone.content


# --- not yet a document ------------------------------------------------------------------

STAY = {"visit_number": "MZ-0001", "patient_class": "I"}
NOT_YET = [
    ("diagnoses without their encounter", [("diagnosis", diagnosis())]),
    ("an encounter without diagnoses", [("encounter", encounter())]),
    ("an inpatient not yet discharged",
     [("encounter", encounter(action="admit", trigger_event="A01", **STAY)),
      ("diagnosis", diagnosis())]),
    ("an admission cancelled (A11)",
     [("encounter", encounter(action="admit", trigger_event="A01", **STAY)),
      ("encounter", encounter("ADT0002", action="cancel", trigger_event="A11",
                              occurred_at=OBSERVED + timedelta(hours=1), **STAY)),
      ("diagnosis", diagnosis())]),
    ("a discharge cancelled (A13)",
     [("encounter", encounter(action="admit", trigger_event="A01", **STAY)),
      ("encounter", encounter("ADT0002", action="discharge", trigger_event="A03",
                              occurred_at=OBSERVED + timedelta(days=1),
                              discharged_at=OBSERVED + timedelta(days=1), **STAY)),
      ("encounter", encounter("ADT0003", action="cancel", trigger_event="A13",
                              occurred_at=OBSERVED + timedelta(days=2), **STAY)),
      ("diagnosis", diagnosis())]),
    ("a patient class that is neither outpatient nor inpatient",
     [("encounter", encounter(patient_class="P")), ("diagnosis", diagnosis())]),
    ("events not linked to an EMPI id",
     [("encounter", encounter(empi_id=None)), ("diagnosis", diagnosis(empi_id=None))]),
]


@pytest.mark.parametrize(("why", "parts"), NOT_YET, ids=[case[0] for case in NOT_YET])
def test_visit_not_yet_a_document(why: str, parts: list[Part]) -> None:
    assert assemble("visit:F001:MZ-0001", parts) is None


@pytest.mark.parametrize(("kind", "parts"), [
    ("outpatient", [("encounter", encounter(patient_class="O")), ("diagnosis", diagnosis())]),
    ("emergency", [("encounter", encounter(patient_class="E")), ("diagnosis", diagnosis())]),
    ("discharged by discharged_at on an update",
     [("encounter", encounter(action="admit", trigger_event="A01", **STAY)),
      ("encounter", encounter("ADT0002", action="update", trigger_event="A08",
                              occurred_at=OBSERVED + timedelta(days=1),
                              discharged_at=OBSERVED + timedelta(days=1), **STAY)),
      ("diagnosis", diagnosis())]),
    ("readmitted after a cancelled admission",
     [("encounter", encounter(action="admit", trigger_event="A01", **STAY)),
      ("encounter", encounter("ADT0002", action="cancel", trigger_event="A11",
                              occurred_at=OBSERVED + timedelta(hours=1), **STAY)),
      ("encounter", encounter("ADT0003", action="admit", trigger_event="A01",
                              occurred_at=OBSERVED + timedelta(hours=2), **STAY)),
      ("encounter", encounter("ADT0004", action="discharge", trigger_event="A03",
                              occurred_at=OBSERVED + timedelta(days=3),
                              discharged_at=OBSERVED + timedelta(days=3), **STAY)),
      ("diagnosis", diagnosis())]),
])
def test_visit_that_is_a_document(kind: str, parts: list[Part]) -> None:
    assert assemble("visit:F001:MZ-0001", parts) is not None


@pytest.mark.parametrize(("key", "parts"), [
    ("lab:F001:FO-5001:", []),
    ("imaging:F001:ACC-7001", [("lab-result", lab_result())]),
    ("rx:F001:RX-8001", [("medication", medication(action="cancel"))]),
    ("lab:F001:FO-5001:", [("lab-result", lab_result(1)),
                                  ("lab-result", lab_result(2, result_status="P"))]),
    ("lab:F001:FO-5001:", [("lab-result", lab_result(1, result_status="D"))]),
    ("imaging:F001:ACC-7001", [("imaging-report", imaging_report(report_status="P"))]),
])
def test_nothing_to_assemble(key: str, parts: list[Part]) -> None:
    assert assemble(key, parts) is None


def test_a_cancelled_discharge_then_a_new_discharge_dates_the_summary() -> None:
    first_out, second_out = OBSERVED + timedelta(days=1), OBSERVED + timedelta(days=4)
    parts: list[Part] = [
        ("encounter", encounter(action="admit", trigger_event="A01", **STAY)),
        ("encounter", encounter("ADT0002", action="discharge", trigger_event="A03",
                                occurred_at=first_out, discharged_at=first_out, **STAY)),
        ("encounter", encounter("ADT0003", action="cancel", trigger_event="A13",
                                occurred_at=first_out + timedelta(hours=2), **STAY)),
        ("encounter", encounter("ADT0004", action="discharge", trigger_event="A03",
                                occurred_at=second_out, discharged_at=second_out, **STAY)),
        ("diagnosis", diagnosis()),
    ]
    document = assemble("visit:F001:MZ-0001", parts)
    assert document is not None
    assert document.kind == "discharge-summary"
    assert document.effective_time == second_out
