"""Sample canonical events for the warehouse tests, each with every field of its schema.

The patient carries a full identity and every event names its clinician (by id, by
name, and by the registry id the stream gave them), so a test can show that neither
the identity nor the name reaches a warehouse row. `SAMPLES` holds one builder per
event type that 0003 gave a table; each builder takes field overrides.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

RECEIVED = datetime(2026, 3, 1, 1, 2, 3, 456000, tzinfo=UTC)
OBSERVED = datetime(2026, 2, 28, 23, 0, tzinfo=UTC)
#: The patient's name, ID card and health card numbers, phone and address.
IDENTITY_VALUES = ("张三", "110101193605060017", "H-998877", "13800138000", "北京市东城区某胡同1号")
#: A clinician's name, as every sample event carries it in its ``*_name`` field.
CLINICIAN_NAME = "李四医生"
#: Free text that names the patient, as a report or an order may.
FREE_TEXT = "张三：右下肺结节，建议随访。"
#: The bytes of a sample document: they name the patient too.
DOCUMENT_CONTENT = "<ClinicalDocument><name>张三</name></ClinicalDocument>".encode()
DOCUMENT_SHA256 = "9f2b1a"  # any lower-case hex: rows copy it, nobody recomputes it

Event = dict[str, Any]


def header(event_type: str, **overrides: Any) -> Event:
    """The ADR 0001 header every event starts with, the patient with a full identity."""
    event: Event = {
        "event_id": "6f1c2a4e-0000-5000-8000-000000000001",
        "event_type": event_type,
        "facility_id": "F001",
        "source_system": "LIS",
        "message_control_id": "MSG0001",
        "source_patient_id": "P123",
        "empi_id": "E-42",
        "occurred_at": OBSERVED,
        "received_at": RECEIVED,
        "patient": {
            "source_patient_id": "P123",
            "identifiers": [{"value": "P123", "type": "MR", "authority": "F001"}],
            "id_card_number": IDENTITY_VALUES[1],
            "health_card_number": IDENTITY_VALUES[2],
            "name": IDENTITY_VALUES[0],
            "sex": "2",
            "phone": IDENTITY_VALUES[3],
            "address": IDENTITY_VALUES[4],
            "birth_date": date(1936, 5, 6),
        },
        "quality_warnings": ["PID-19: bad check digit"],
        "map_version": "2026.1",
        "codes": [],
        "unmapped": [],
    }
    return event | overrides


def imaging_report(**overrides: Any) -> Event:
    """A final CT report with a critical finding (schemas/imaging-report.avsc)."""
    return header("imaging-report", source_system="RIS") | {
        "accession_number": "ACC-7001",
        "placer_order_number": "PO-7001",
        "filler_order_number": "FO-7001",
        "study_instance_uid": "1.2.156.112605.7001",
        "modality": "CT",
        "procedure_code": "CT-CHEST",
        "procedure_name": "胸部CT平扫",
        "body_part": "胸部",
        "study_at": OBSERVED,
        "reported_at": RECEIVED,
        "report_status": "F",
        "report_text": FREE_TEXT,
        "impression": "右下肺结节",
        "critical_finding": True,
        "radiologist_id": "R-9",
        "radiologist_name": CLINICIAN_NAME,
        "practitioner_id": "F001|R-9",
        "practitioner_status": "known",
        "performing_department": "放射科",
    } | overrides


def order(**overrides: Any) -> Event:
    """A new order for a chest CT (schemas/order.avsc)."""
    return header("order", source_system="HIS") | {
        "order_control": "NW",
        "placer_order_number": "PO-7001",
        "filler_order_number": None,
        "placer_group_number": "PG-1",
        "order_status": "IP",
        "item_code": "CT-CHEST",
        "item_name": "胸部CT平扫",
        "item_system": "L",
        "diagnostic_service": "RAD",
        "priority": "S",
        "specimen_type": None,
        "clinical_info": FREE_TEXT,
        "ordered_at": OBSERVED,
        "ordering_provider_id": "D-1",
        "ordering_provider_name": CLINICIAN_NAME,
        "practitioner_id": "F001|D-1",
        "practitioner_status": "known",
        "ordering_department": "呼吸内科",
        "visit_number": "MZ-0001",
    } | overrides


def medication(**overrides: Any) -> Event:
    """A prescribed amoxicillin line (schemas/medication.avsc)."""
    return header("medication", source_system="HIS") | {
        "action": "prescribe",
        "order_control": "NW",
        "placer_order_number": "PO-8001",
        "filler_order_number": None,
        "prescription_number": "RX-8001",
        "drug_code": "86900001",
        "drug_name": "阿莫西林胶囊",
        "drug_system": "YPBM",
        "dose": 0.5,
        "dose_unit": "g",
        "dosage_form": "胶囊",
        "route": "PO",
        "frequency": "TID",
        "duration": "7d",
        "duration_days": 7,
        "quantity": 42.0,
        "quantity_unit": "粒",
        "prescribed_at": OBSERVED,
        "dispensed_at": None,
        "prescriber_id": "D-1",
        "prescriber_name": CLINICIAN_NAME,
        "practitioner_id": "F001|D-1",
        "practitioner_status": "known",
        "department": "呼吸内科",
        "visit_number": "MZ-0001",
    } | overrides


def diagnosis(**overrides: Any) -> Event:
    """The principal outpatient diagnosis of a visit (schemas/diagnosis.avsc)."""
    return header("diagnosis", source_system="HIS") | {
        "set_id": 1,
        "diagnosis_code": "J06.9",
        "diagnosis_system": "ICD-10",
        "diagnosis_name": "急性上呼吸道感染",
        "diagnosis_type": "F",
        "priority": 1,
        "diagnosed_at": OBSERVED,
        "clinician_id": "D-1",
        "clinician_name": CLINICIAN_NAME,
        "practitioner_id": "F001|D-1",
        "practitioner_status": "known",
        "visit_number": "MZ-0001",
    } | overrides


def document(**overrides: Any) -> Event:
    """An outpatient record, version 2 of its set (schemas/document.avsc)."""
    return header("document", source_system="EMR") | {
        "document_id": "2.16.156.10011.1.1^DOC-1",
        "document_type_code": "C0003",
        "document_type_name": "门(急)诊病历",
        "document_code": "34133-9",
        "title": "门诊病历",
        "effective_time": OBSERVED,
        "confidentiality_code": "N",
        "set_id": "2.16.156.10011.1.1^SET-1",
        "version_number": 2,
        "replaces_document_id": "2.16.156.10011.1.1^DOC-0",
        "author_id": "D-1",
        "author_name": CLINICIAN_NAME,
        "practitioner_id": "F001|D-1",
        "practitioner_status": "known",
        "custodian_id": "12110000400000000X",
        "custodian_name": "某区人民医院",
        "visit_number": "MZ-0001",
        "content_type": "text/xml",
        "content": DOCUMENT_CONTENT,
        "content_sha256": DOCUMENT_SHA256,
    } | overrides


#: Event type -> a builder of a sample event, for the types migration 0003 added.
SAMPLES: dict[str, Callable[..., Event]] = {
    "imaging-report": imaging_report,
    "order": order,
    "medication": medication,
    "diagnosis": diagnosis,
    "document": document,
}
