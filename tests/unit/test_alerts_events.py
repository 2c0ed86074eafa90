"""Sample translated events for the critical-value tests, and proof that they fit their schemas.

The other ``test_alerts_*`` modules build their results here. Every person,
number and facility is fictional.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from schemas import catalog, wire
from streams.alerts.bands import CHINA_TIME

#: When the results were observed and received (UTC); the alerts are raised at RAISED.
OBSERVED = datetime(2026, 3, 1, 1, 30, tzinfo=UTC)
RECEIVED = datetime(2026, 3, 1, 1, 45, tzinfo=UTC)
RAISED = datetime(2026, 3, 1, 1, 46, tzinfo=UTC)
ADULT_BORN = date(1970, 5, 6)
PATIENT_NAME = "赵六"

Event = dict[str, Any]


def born_days_before(days: int, at: datetime = OBSERVED) -> date:
    """The birth date of a patient ``days`` old on the (China) day of ``at``."""
    return at.astimezone(CHINA_TIME).date() - timedelta(days=days)


NEONATE_BORN = born_days_before(5)
CHILD_BORN = born_days_before(6 * 365)


def _header(event_type: str, birth_date: date | None, sex: str | None) -> Event:
    codes = [] if sex is None else [
        {"field": "patient.sex", "system": "GB/T 2261.1", "code": sex, "display": None}]
    return {
        "event_id": "9d0c5b1e-0000-5000-8000-000000000001",
        "event_type": event_type,
        "facility_id": "QSXRMYY",
        "source_system": "LIS",
        "message_control_id": "MSG0001",
        "source_patient_id": "P123",
        "empi_id": "E-42",
        "occurred_at": None,
        "received_at": RECEIVED,
        "patient": {
            "source_patient_id": "P123",
            "identifiers": [{"value": "P123", "type": "PI", "authority": "QSXRMYY"}],
            "id_card_number": None,
            "health_card_number": None,
            "name": PATIENT_NAME,
            "sex": {"1": "M", "2": "F"}.get(sex or "", "U"),
            "phone": None,
            "address": None,
            "birth_date": birth_date,
        },
        "quality_warnings": [],
        "map_version": "2026.1",
        "codes": codes,
        "unmapped": [],
        "practitioner_id": None,
        "practitioner_status": None,
    }


def lab_result(code: str | None = "2823-3", value: float | None = 4.0,
               unit: str | None = "mmol/L", *, birth_date: date | None = ADULT_BORN,
               sex: str | None = "1", flags: tuple[str, ...] = (), **overrides: Any) -> Event:
    """A translated lab result: LOINC ``code``, ``value`` in ``unit`` as the standard value."""
    event = _header("lab-result", birth_date, sex)
    if code is not None:
        event["codes"].append({"field": "test_code", "system": "LOINC", "code": code,
                               "display": None})
    event |= {
        "set_id": 1,
        "placer_order_number": "ORD1001",
        "filler_order_number": "LAB1001",
        "panel_code": "ELEC",
        "panel_name": "电解质",
        "specimen_type": "SER",
        "specimen_collected_at": OBSERVED - timedelta(hours=1),
        "test_code": "K",
        "test_name": "钾",
        "test_system": "L",
        "value_type": "NM",
        "value": None if value is None else f"{value:g}",
        "value_numeric": value,
        "unit": unit,
        "reference_range": "3.5-5.3",
        "abnormal_flags": list(flags),
        "result_status": "F",
        "observed_at": OBSERVED,
        "performing_lab": "检验科",
        "standard_value": value,
        "standard_unit": unit,
        "ordering_provider_id": "D0012",
        "ordering_department": "心内科",
        "visit_number": "ZY-0001",
        "patient_class": "I",
    }
    return event | overrides


def imaging_report(critical: bool | None = True, **overrides: Any) -> Event:
    """A signed CT report."""
    return _header("imaging-report", ADULT_BORN, "2") | {
        "source_system": "RIS",
        "accession_number": "ACC-7001",
        "placer_order_number": "PO-7001",
        "filler_order_number": "FO-7001",
        "study_instance_uid": "1.2.156.112605.7001",
        "modality": "CT",
        "procedure_code": "CT-HEAD",
        "procedure_name": "头颅CT平扫",
        "body_part": "头部",
        "study_at": OBSERVED,
        "reported_at": OBSERVED + timedelta(minutes=20),
        "report_status": "F",
        "report_text": "左侧基底节区高密度影。",
        "impression": "脑出血",
        "critical_finding": critical,
        "radiologist_id": "R-9",
        "radiologist_name": "放射科医生",
        "performing_department": "放射科",
    } | overrides


def test_samples_fit_their_schemas() -> None:
    assert wire.check(catalog.schema("lab-result"), lab_result(flags=("HH",))) is None
    assert wire.check(catalog.schema("imaging-report"), imaging_report()) is None


def test_samples_carry_every_field() -> None:
    for name, event in (("lab-result", lab_result()), ("imaging-report", imaging_report())):
        fields = [f["name"] for f in catalog.schema(name).parsed["fields"]]
        assert sorted(event) == sorted(fields)
