"""Sensitive categories (infectious disease, mental health) and the confidentiality they give."""

from __future__ import annotations

from typing import Any

import pytest

from sinks.docstore.assembly import assemble, sensitivity
from sinks.docstore.assembly.sensitivity import HIV_LOINC, icd10_category
from sinks.docstore.model import SENSITIVE_CATEGORIES, Part
from streams.terminology.shapes import is_loinc
from tests.unit.test_assembly import (
    NS,
    diagnosis,
    encounter,
    imaging_report,
    lab_result,
    medication,
    one,
    tree,
)

INFECTIOUS, MENTAL = "infectious-disease", "mental-health"


def _dx(code: str, position: int = 1, **overrides: Any) -> Part:
    return ("diagnosis", diagnosis(position, diagnosis_code=code, **overrides))


CASES: list[tuple[str, list[Part], set[str]]] = [
    ("tuberculosis A15.0", [_dx("A15.0")], {INFECTIOUS}),
    ("HIV disease B20", [_dx("B20")], {INFECTIOUS}),
    ("chapter I ends at B99", [_dx("B99")], {INFECTIOUS}),
    ("COVID-19 U07.1", [_dx("U07.1")], {INFECTIOUS}),
    ("U08 is not U07", [_dx("U08.9")], set()),
    ("depression F32.900", [_dx("F32.900")], {MENTAL}),
    ("schizophrenia f20.0 as sent, untranslated",
     [("diagnosis", diagnosis(diagnosis_code="f20.0") | {"codes": []})], {MENTAL}),
    ("hypertension I10.x00", [_dx("I10")], set()),
    ("a local code translated to F20", [("diagnosis", diagnosis(diagnosis_code="JSB01") | {
        "codes": [{"field": "diagnosis_code", "system": "ICD-10 国家临床版 2.0",
                   "code": "F20.000", "display": None}]})], {MENTAL}),
    ("both categories", [_dx("F32.900"), _dx("A15.0", 2)], {INFECTIOUS, MENTAL}),
    ("HIV test by translated LOINC", [("lab-result", lab_result() | {"codes": [
        {"field": "test_code", "system": "LOINC", "code": "56888-1", "display": None}]})],
     {INFECTIOUS}),
    ("HIV test sent as LOINC", [("lab-result", lab_result(test_code="7917-8", test_system="LN",
                                                          codes=[]))], {INFECTIOUS}),
    ("HIV viral load by name only", [("lab-result", lab_result(
        test_code="X1", test_name="HIV-1 RNA定量", codes=[]))], {INFECTIOUS}),
    ("HIV test by a Chinese name", [("lab-result", lab_result(
        test_code="X2", test_name="艾滋病抗体", codes=[]))], {INFECTIOUS}),
    ("potassium is not sensitive", [("lab-result", lab_result())], set()),
    ("a LOINC code of another test", [("lab-result", lab_result(test_code="2823-3",
                                                                test_system="LN"))], set()),
    ("encounters, imaging and medication alone", [("encounter", encounter()),
                                                  ("imaging-report", imaging_report()),
                                                  ("medication", medication())], set()),
    ("asymptomatic HIV infection Z21", [_dx("Z21")], {INFECTIOUS}),
    ("inconclusive HIV test R75", [_dx("R75.x00")], {INFECTIOUS}),
    ("HIV complicating pregnancy O98.7", [_dx("O98.700")], {INFECTIOUS}),
    ("other infection in pregnancy O98.8 is not HIV", [_dx("O98.8")], set()),
    ("an antiretroviral by its translated ATC code", [("medication", medication(
        drug_code="LOC-1", drug_name="复方片") | {"codes": [
            {"field": "drug_code", "system": "ATC", "code": "J05AR03", "display": None}]})],
     {INFECTIOUS}),
    ("an antiretroviral by its ATC code as sent", [("medication", medication(
        drug_code="j05af05", drug_system="ATC", drug_name="片剂"))], {INFECTIOUS}),
    ("an integrase inhibitor by its Chinese name", [("medication", medication(
        drug_code="LOC-2", drug_name="多替拉韦钠片"))], {INFECTIOUS}),
    ("an antipsychotic by its ATC code", [("medication", medication(
        drug_code="N05AH03", drug_system="ATC", drug_name="片剂"))], {MENTAL}),
    ("an antipsychotic by its Chinese name", [("medication", medication(
        drug_code="LOC-3", drug_name="奥氮平片"))], {MENTAL}),
    ("an antipsychotic by its English name", [("medication", medication(
        drug_code="LOC-4", drug_name="Clozapine Tablets"))], {MENTAL}),
    ("other antivirals are not flagged: oseltamivir J05AH02", [("medication", medication(
        drug_code="J05AH02", drug_system="ATC", drug_name="奥司他韦胶囊"))], set()),
    ("an anxiolytic N05B is not an antipsychotic", [("medication", medication(
        drug_code="N05BA01", drug_system="ATC", drug_name="地西泮片"))], set()),
]


@pytest.mark.parametrize(("why", "parts", "expected"), CASES, ids=[case[0] for case in CASES])
def test_sensitivity(why: str, parts: list[Part], expected: set[str]) -> None:
    found = sensitivity(parts)
    assert found == frozenset(expected)
    assert found <= SENSITIVE_CATEGORIES


@pytest.mark.parametrize(("code", "category"), [
    ("A00", INFECTIOUS), ("a09.900", INFECTIOUS), ("Ｂ２０", INFECTIOUS), ("U07.2", INFECTIOUS),
    ("F99", MENTAL), ("F00.0", MENTAL), ("G30", None), ("C00", None), ("U071", INFECTIOUS),
    ("", None), (None, None), ("A", None), ("123", None), ("AB1", None),
    ("Z21", INFECTIOUS), ("R75", INFECTIOUS), ("O98.7", INFECTIOUS), ("O98.711", INFECTIOUS),
    ("O98.6", None), ("R76", None), ("Z22", None),
])
def test_icd10_category(code: str | None, category: str | None) -> None:
    assert icd10_category(code) == category


def test_hiv_loinc_table_holds_valid_loinc_codes() -> None:
    assert len(HIV_LOINC) >= 10
    assert all(is_loinc(code) for code in HIV_LOINC)


@pytest.mark.parametrize(("key", "parts", "categories"), [
    ("visit:F001:MZ-0001", [("encounter", encounter()), _dx("B20")], {INFECTIOUS}),
    ("visit:F001:MZ-0001", [("encounter", encounter()), _dx("F32.900")], {MENTAL}),
    ("lab:F001:FO-5001:", [("lab-result", lab_result(test_code="7917-8",
                                                            test_system="LN"))], {INFECTIOUS}),
    ("visit:F001:MZ-0001", [("encounter", encounter()), _dx("J06.9")], set()),
    ("rx:F001:RX-8001", [("medication", medication(drug_name="利培酮片"))], {MENTAL}),
])
def test_sensitive_document_is_restricted(key: str, parts: list[Part],
                                          categories: set[str]) -> None:
    document = assemble(key, parts)
    assert document is not None
    assert document.sensitivity == frozenset(categories)
    code = "R" if categories else "N"
    assert document.confidentiality_code == code
    cda = tree(document.content)
    assert one(cda, "/v3:ClinicalDocument/v3:confidentialityCode").get("code") == code
    assert NS  # the namespaces the helper reads with


def test_the_code_as_sent_counts_when_translation_says_otherwise() -> None:
    """Flag rather than miss: a sent code in chapter I counts even if a map gave another."""
    record = diagnosis(diagnosis_code="B20", diagnosis_system="LOCAL") | {"codes": [
        {"field": "diagnosis_code", "system": "ICD-10 国家临床版 2.0", "code": "J18.900",
         "display": None}]}
    document = assemble("visit:F001:MZ-0001", [("encounter", encounter()),
                                               ("diagnosis", record)])
    assert document is not None
    assert document.confidentiality_code == "R"
    assert document.sensitivity == {INFECTIOUS}
