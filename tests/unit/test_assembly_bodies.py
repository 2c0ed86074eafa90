"""What each kind's body says: lab results, the imaging report, prescription lines, diagnoses."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from sinks.docstore.assembly import assemble
from sinks.docstore.model import Document, Part
from tests.unit.test_assembly import (
    GROUPS,
    NS,
    OBSERVED,
    diagnosis,
    encounter,
    imaging_report,
    inpatient_visit,
    lab_result,
    medication,
    one,
    tree,
)

SECTION = "//v3:section[v3:code/@code='{}']"


def built(key: str, parts: list[Part]) -> Document:
    document = assemble(key, parts)
    assert document is not None
    return document


# --- lab ---------------------------------------------------------------------------------

def test_lab_results_in_obx_order_with_values_flags_and_loinc() -> None:
    key, parts = GROUPS["lab-report"]
    cda = tree(built(key, list(reversed(parts))).content)
    results = cda.xpath(f"{SECTION.format('30954-2')}//v3:organizer/v3:component/v3:observation",
                        namespaces=NS)
    assert [one(r, "v3:code").get("code") for r in results] == ["K", "NA"]
    potassium, sodium = results
    translation = one(potassium, "v3:code/v3:translation")
    assert (translation.get("code"), translation.get("codeSystem")) == ("2823-3",
                                                                        "2.16.840.1.113883.6.1")
    assert sodium.xpath("v3:code/v3:translation", namespaces=NS) == []
    assert one(potassium, "v3:value").get("value") == "6.8"
    assert one(potassium, "v3:value").get(f"{{{NS['xsi']}}}type") == "REAL"
    assert one(potassium, "v3:interpretationCode").get("code") == "HH"
    assert one(potassium, "v3:effectiveTime").get("value") == "20260301070000+0800"
    assert one(potassium, "v3:statusCode").get("code") == "completed"
    assert one(potassium, "v3:referenceRange/v3:observationRange/v3:text").text == "3.5-5.5"
    assert one(potassium, ".//v3:observation[v3:code/@code='DE04.30.016.00']/v3:value"
               ).text == "mmol/L"
    standard = one(potassium, ".//v3:observation[v3:code/@code='DE04.30.015.00']/v3:value")
    assert (standard.get("value"), standard.get("unit")) == ("6.8", "mmol/L")
    specimen = one(potassium, ".//v3:observation[v3:code/@code='DE04.50.134.00']")
    assert one(specimen, "v3:value").text == "血清"
    assert one(specimen, "v3:effectiveTime/v3:low").get("value") == "20260301050000+0800"
    assert one(potassium, "v3:performer//v3:representedOrganization/v3:name").text == "检验科"
    organizer = one(cda, "//v3:organizer")
    assert {i.get("root"): i.get("extension") for i in organizer.xpath("v3:id", namespaces=NS)
            } == {"2.16.156.10011.1.24": "PO-5001", "2.16.156.10011.1.33": "FO-5001"}
    referrer = one(cda, "/v3:ClinicalDocument/v3:participant[@typeCode='REF']")
    assert one(referrer, ".//v3:id").get("extension") == "D-7"
    assert one(referrer, ".//v3:scopingOrganization/v3:name").text == "心内科"


@pytest.mark.parametrize(("overrides", "xsi_type", "shown"), [
    ({"value": "阴性", "value_numeric": None, "value_type": "ST"}, "ST", "阴性"),
    ({"value": "1e-05", "value_numeric": 1e-05}, "REAL", "0.00001"),
    ({"value": "100", "value_numeric": 100.0}, "REAL", "100"),
])
def test_lab_value_types(overrides: dict[str, Any], xsi_type: str, shown: str) -> None:
    cda = tree(built("lab:F001:FO-5001:",
                     [("lab-result", lab_result(**overrides))]).content)
    found = one(cda, "//v3:organizer/v3:component/v3:observation/v3:value")
    assert found.get(f"{{{NS['xsi']}}}type") == xsi_type
    assert (found.text if xsi_type == "ST" else found.get("value")) == shown


@pytest.mark.parametrize(("statuses", "shown"), [
    (["F", "F"], ["K", "NA"]), (["C", None], ["K", "NA"]), (["F", "D"], ["K"]),
    (["W", "X"], ["NA"]),
])
def test_lab_results_withdrawn_are_left_out(statuses: list[str | None],
                                            shown: list[str]) -> None:
    parts: list[Part] = [("lab-result", lab_result(1, result_status=statuses[0])),
                         ("lab-result", lab_result(2, test_code="NA", result_status=statuses[1]))]
    cda = tree(built("lab:F001:FO-5001:", parts).content)
    assert [c.get("code") for c in cda.xpath("//v3:organizer/v3:component/v3:observation/v3:code",
                                             namespaces=NS)] == shown


def test_lab_result_sent_as_loinc_is_coded_as_loinc() -> None:
    record = lab_result(test_code="2823-3", test_system="LN", codes=[])
    cda = tree(built("lab:F001:FO-5001:", [("lab-result", record)]).content)
    code = one(cda, "//v3:organizer/v3:component/v3:observation/v3:code")
    assert (code.get("code"), code.get("codeSystem")) == ("2823-3", "2.16.840.1.113883.6.1")


# --- imaging -----------------------------------------------------------------------------

def test_imaging_report_shows_the_newest_report() -> None:
    preliminary = imaging_report("RIS0001", report_status="P", impression="待定",
                                 reported_at=OBSERVED, critical_finding=False)
    corrected = imaging_report("RIS0002", report_status="C", impression="右下肺结节，建议随访",
                               reported_at=OBSERVED + timedelta(days=1))
    document = built("imaging:F001:ACC-7001", [("imaging-report", corrected),
                                                ("imaging-report", preliminary)])
    assert document.event_ids == tuple(sorted([preliminary["event_id"], corrected["event_id"]]))
    assert document.effective_time == OBSERVED + timedelta(days=1)
    cda = tree(document.content)
    exam = one(cda, f"{SECTION.format('30954-2')}/v3:entry/v3:observation")
    assert one(exam, ".//v3:observation[v3:code/@code='DE04.50.132.00']/v3:value"
               ).text == "右下肺结节，建议随访"
    assert one(exam, "v3:statusCode").get("code") == "completed"
    assert one(exam, "v3:interpretationCode").get("code") == "AA"
    assert one(exam, "v3:methodCode").get("code") == "CT"
    assert one(exam, "v3:targetSiteCode/v3:originalText").text == "胸部"
    assert one(exam, "v3:id[@root='2.16.156.10011.1.32']").get("extension") == "ACC-7001"
    author = one(cda, "/v3:ClinicalDocument/v3:author/v3:assignedAuthor")
    assert one(author, "v3:id").get("extension") == "R-9"
    assert document.author_id == "R-9"


@pytest.mark.parametrize("control_ids", [("RIS0001", "RIS0002"), ("RIS0002", "RIS0001")])
def test_of_reports_equally_new_the_corrected_one_wins(control_ids: tuple[str, str]) -> None:
    final = imaging_report(control_ids[0], report_status="F", impression="右下肺结节")
    corrected = imaging_report(control_ids[1], report_status="C", impression="未见结节")
    cda = tree(built("imaging:F001:ACC-7001", [("imaging-report", final),
                                               ("imaging-report", corrected)]).content)
    assert one(cda, "//v3:observation[v3:code/@code='DE04.50.132.00']/v3:value").text == "未见结节"


# --- prescription ------------------------------------------------------------------------

def _drugs(parts: list[Part]) -> list[str]:
    document = assemble("rx:F001:RX-8001", parts)
    if document is None:
        return []
    cda = tree(document.content)
    return [c.get("code") for c in cda.xpath("//v3:manufacturedLabeledDrug/v3:code",
                                             namespaces=NS)]


LATER = OBSERVED + timedelta(hours=1)
PRESCRIPTION_CASES = [
    ("two lines", [medication(1), medication(2, drug_code="B")], ["86900001", "B"]),
    ("a cancelled line is dropped",
     [medication(1), medication(2, drug_code="B"),
      medication(2, "RX0002", drug_code="B", action="cancel", occurred_at=LATER)],
     ["86900001"]),
    ("every line cancelled", [medication(1), medication(1, "RX0002", action="cancel",
                                                        occurred_at=LATER)], []),
    ("a dispense alone makes the line", [medication(1, action="dispense")], ["86900001"]),
    ("a dispense does not repeat a prescribed line",
     [medication(1), medication(1, "RX0003", action="dispense", occurred_at=LATER,
                                drug_code="86900001X")], ["86900001"]),
    ("a later prescription of the line replaces it",
     [medication(1), medication(1, "RX0004", drug_code="C", occurred_at=LATER)], ["C"]),
]


@pytest.mark.parametrize(("why", "parts", "drugs"), PRESCRIPTION_CASES,
                         ids=[case[0] for case in PRESCRIPTION_CASES])
def test_prescription_lines(why: str, parts: list[dict[str, object]], drugs: list[str]) -> None:
    assert _drugs([("medication", record) for record in parts]) == drugs


def test_prescription_line_details() -> None:
    cda = tree(built("rx:F001:RX-8001", [("medication", medication(1))]).content)
    line = one(cda, "//v3:substanceAdministration")
    assert one(line, "v3:doseQuantity").get("value") == "0.5"
    assert one(line, "v3:effectiveTime/v3:width").get("value") == "7"
    assert one(line, "v3:routeCode/v3:originalText").text == "PO"
    assert one(line, "v3:id[@root='2.16.156.10011.1.20']").get("extension") == "RX-8001"
    assert one(line, ".//v3:observation[v3:code/@displayName='用药频率']/v3:value").text == "TID"


# --- visits ------------------------------------------------------------------------------

def _codes(cda: object, loinc: str) -> list[str | None]:
    return [value.get("code") for value in cda.xpath(  # type: ignore[attr-defined]
        f"{SECTION.format(loinc)}/v3:entry/v3:observation/v3:value", namespaces=NS)]


def test_discharge_summary_sections_and_principal_first() -> None:
    document = built("visit:F001:ZY-2026-001", inpatient_visit())
    assert document.kind == "discharge-summary"
    assert document.effective_time == OBSERVED + timedelta(days=5)
    cda = tree(document.content)
    assert _codes(cda, "46241-6") == ["I21.400"]
    assert _codes(cda, "11535-2") == ["I21.400", "E11.900"]   # one per code; priority 1 first
    period = one(cda, "//v3:encompassingEncounter/v3:effectiveTime")
    assert one(period, "v3:low").get("value") == "20260301070000+0800"
    assert one(period, "v3:high").get("value") == "20260306070000+0800"
    assert one(cda, "//v3:encompassingEncounter/v3:id").get("extension") == "ZY-2026-001"


def test_outpatient_record_carries_every_diagnosis() -> None:
    parts = [("encounter", encounter()), ("diagnosis", diagnosis(2, diagnosis_code="R05",
                                                                 priority=2)),
             ("diagnosis", diagnosis(1))]
    cda = tree(built("visit:F001:MZ-0001", parts).content)
    assert _codes(cda, "29548-5") == ["J06.900", "R05.x00"]
    value = one(cda, f"{SECTION.format('29548-5')}/v3:entry[1]/v3:observation/v3:value")
    assert value.get("codeSystem") == "2.16.156.10011.2.3.3.11"
    assert one(value, "v3:translation").get("code") == "J06.9"


def test_untranslated_diagnosis_keeps_its_code_without_the_icd10_oid() -> None:
    parts = [("encounter", encounter()),
             ("diagnosis", diagnosis(diagnosis_system="LOCAL") | {"codes": []})]
    cda = tree(built("visit:F001:MZ-0001", parts).content)
    value = one(cda, f"{SECTION.format('29548-5')}/v3:entry/v3:observation/v3:value")
    assert (value.get("code"), value.get("codeSystem"), value.get("codeSystemName")) == (
        "J06.9", None, "LOCAL")
