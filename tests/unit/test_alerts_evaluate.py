"""evaluate(): which rules a translated result crosses, on tables of cases."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

import pytest

from streams.alerts import evaluate, load_default, skipped
from streams.alerts.evaluate import loinc_code, patient_sex
from streams.alerts.rules import Limit, Rule
from tests.unit.test_alerts_events import (
    ADULT_BORN,
    CHILD_BORN,
    NEONATE_BORN,
    OBSERVED,
    imaging_report,
    lab_result,
)

DEFAULT = load_default()


def fired(event: dict[str, Any]) -> list[str]:
    return [hit.rule_id for hit in evaluate(event, DEFAULT)]


@pytest.mark.parametrize(("code", "value", "born", "rules"), [
    # glucose: 2.7 is critical for an adult and not for a neonate, 2.5 for both
    ("14749-6", 2.7, ADULT_BORN, ["glucose-low"]),
    ("14749-6", 2.7, NEONATE_BORN, []),
    ("14749-6", 2.5, NEONATE_BORN, ["glucose-low-neonate"]),
    ("14749-6", 2.5, CHILD_BORN, ["glucose-low"]),
    ("14749-6", 26.0, ADULT_BORN, ["glucose-high"]),
    ("14749-6", 26.0, NEONATE_BORN, []),
    ("14749-6", 30.0, NEONATE_BORN, ["glucose-high-neonate"]),
    # hemoglobin: 80 g/L is critical for a neonate only
    ("718-7", 80, NEONATE_BORN, ["hemoglobin-low-neonate"]),
    ("718-7", 80, ADULT_BORN, []),
    ("718-7", 55, ADULT_BORN, ["hemoglobin-low"]),
    ("718-7", 55, NEONATE_BORN, ["hemoglobin-low-neonate"]),
    # unknown age: the general row fires, the neonatal one never does
    ("14749-6", 2.7, None, ["glucose-low"]),
    ("718-7", 80, None, []),
    ("2823-3", 6.1, None, []),
    ("2823-3", 6.8, None, ["potassium-high"]),
    ("14631-6", 300, None, []),
    ("14631-6", 300, NEONATE_BORN, ["bilirubin-high-neonate"]),
])
def test_bands_choose_the_rows(code: str, value: float, born: date | None,
                               rules: list[str]) -> None:
    unit = {"718-7": "g/L", "14631-6": "umol/L"}.get(code, "mmol/L")
    assert fired(lab_result(code, value, unit, birth_date=born)) == rules


@pytest.mark.parametrize(("unit", "rules"), [
    ("mmol/L", ["potassium-high"]),
    ("mmol/l", ["potassium-high"]),
    ("mEq/L", []),  # another unit: not compared, and listed by skipped()
    ("mg/dL", []),
    (None, []),
])
def test_a_result_in_another_unit_does_not_match(unit: str | None, rules: list[str]) -> None:
    event = lab_result("2823-3", 6.8, unit)
    assert fired(event) == rules
    reasons = [s.reason for s in skipped(event, DEFAULT)]
    if rules:
        assert reasons == []
    else:
        assert f"unit {unit!r} is not the rule's 'mmol/L'" in reasons


def test_without_a_standard_value_the_value_as_sent_is_compared_in_its_own_unit() -> None:
    event = lab_result("2823-3", 6.8, "mmol/L", standard_value=None, standard_unit=None)
    assert fired(event) == ["potassium-high"]
    assert fired(event | {"unit": "mg/dL"}) == []


def test_no_number_is_listed_as_skipped() -> None:
    event = lab_result("2823-3", None, None) | {"value": "溶血", "value_type": "ST"}
    assert fired(event) == []
    assert {s.reason for s in skipped(event, DEFAULT)} == {"no numeric value"}


@pytest.mark.parametrize(("department", "value", "rules"), [
    ("心内科", 500, ["creatinine-high"]),
    ("肾内科", 500, []),  # nephrology is excluded from > 450 ...
    ("肾脏内科三病区", 500, []),
    ("Nephrology ward", 500, []),  # compared case-insensitively
    ("肾内科", 1300, ["creatinine-high-nephrology"]),  # ... and has its own > 1200
    ("心内科", 1300, ["creatinine-high"]),
    (None, 500, ["creatinine-high"]),  # unknown department: not excluded
    (None, 1300, ["creatinine-high"]),  # and not nephrology either
])
def test_department_exclusion(department: str | None, value: float, rules: list[str]) -> None:
    event = lab_result("14682-9", value, "umol/L", ordering_department=department)
    assert fired(event) == rules


@pytest.mark.parametrize(("department", "value", "rules"), [
    ("血液科", 1.5, []),
    ("血液科", 0.5, ["wbc-low-haematology"]),
    ("心内科", 1.5, ["wbc-low"]),
    ("血液净化中心", 1.5, ["wbc-low"]),  # dialysis is not haematology
])
def test_haematology_has_its_own_wbc_limit(department: str, value: float,
                                           rules: list[str]) -> None:
    event = lab_result("6690-2", value, "10*9/L", ordering_department=department)
    assert fired(event) == rules


@pytest.mark.parametrize(("flags", "code", "value", "rules"), [
    (("HH",), "2823-3", 6.0, ["flag-HH"]),  # the lab's list is stricter than hutong's
    (("LL",), "2823-3", 3.0, ["flag-LL"]),
    (("AA",), None, None, ["flag-AA"]),  # a qualitative or untranslated result
    (("hh ",), "2823-3", 6.0, ["flag-HH"]),  # as sent, trimmed and upper-cased
    (("HH", "HH"), "2823-3", 6.0, ["flag-HH"]),
    (("HH", "AA"), "2823-3", 6.0, ["flag-HH", "flag-AA"]),
    (("H",), "2823-3", 6.0, []),
    (("N",), "2823-3", 4.0, []),
    (("HH",), "2823-3", 6.8, ["potassium-high"]),  # one result, one alert: the limit's
])
def test_source_flags(flags: tuple[str, ...], code: str | None, value: float | None,
                      rules: list[str]) -> None:
    event = lab_result(code, value, "mmol/L" if value is not None else None, flags=flags)
    assert fired(event) == rules


@pytest.mark.parametrize(("critical", "status", "rules"), [
    (True, "F", ["pacs-critical"]),
    (True, "P", ["pacs-critical"]),  # a preliminary report's critical finding is still urgent
    (False, "F", []),
    (None, "F", []),
    (True, "X", []),
])
def test_pacs_critical_finding(critical: bool | None, status: str, rules: list[str]) -> None:
    assert fired(imaging_report(critical, report_status=status)) == rules


@pytest.mark.parametrize(("status", "rules"), [
    ("F", ["potassium-high"]), ("C", ["potassium-high"]), ("P", ["potassium-high"]),
    (None, ["potassium-high"]), ("D", []), ("W", []), ("X", []),
])
def test_deleted_or_wrong_results_raise_nothing(status: str | None, rules: list[str]) -> None:
    assert fired(lab_result("2823-3", 6.8, result_status=status)) == rules


def test_other_events_raise_nothing() -> None:
    assert fired({"event_type": "order", "critical_finding": True}) == []


def test_a_hit_names_the_rule_the_value_and_the_description() -> None:
    (hit,) = evaluate(lab_result("2823-3", 6.8, "mmol/L"), DEFAULT)
    assert (hit.rule_id, hit.code, hit.value, hit.unit, hit.result_at) == (
        "potassium-high", "2823-3", 6.8, "mmol/L", OBSERVED)
    assert hit.description == "potassium > 6.2 mmol/L (except neonates)"


@pytest.mark.parametrize(("codes", "test_system", "code"), [
    ([{"field": "test_code", "system": "LOINC", "code": "2823-3"}], "L", "2823-3"),
    ([{"field": "unit", "system": "UCUM", "code": "mmol/L"}], "L", None),
    ([], "LN", "K"),  # sent as LOINC: the test code is the LOINC code
    ([], "L", None),
])
def test_the_loinc_code(codes: list[dict[str, str]], test_system: str, code: str | None) -> None:
    assert loinc_code(lab_result(None, codes=codes, test_system=test_system)) == code


@pytest.mark.parametrize(("coded", "sent", "sex"), [
    ("1", "M", "1"), ("2", "M", "2"), (None, "F", "2"), (None, "2", "2"), (None, "U", None),
    ("9", "F", None),  # the translation says unstated: the raw code is not second-guessed
])
def test_patient_sex(coded: str | None, sent: str, sex: str | None) -> None:
    event = lab_result(sex=coded)
    event["patient"] = event["patient"] | {"sex": sent}
    assert patient_sex(event) == sex


#: The default plus a female-only and an emergency-only row, as a facility might add.
FILTERED = replace(DEFAULT, rules=(
    *DEFAULT.rules,
    Rule("hemoglobin-low-female", analyte="hemoglobin", codes=("718-7",), unit="g/L",
         low=Limit(70), sexes=frozenset({"2"}), exclude_bands=frozenset({"neonate"})),
    Rule("potassium-high-ed", analyte="potassium", codes=("2823-3",), unit="mmol/L",
         high=Limit(5.8), patient_classes=frozenset({"E"})),
))


@pytest.mark.parametrize(("sex", "value", "rules"), [
    ("2", 65, ["hemoglobin-low-female"]),
    ("1", 65, []),
    (None, 65, []),  # unknown sex: a sex-restricted row does not fire
    ("2", 55, ["hemoglobin-low", "hemoglobin-low-female"]),
    ("1", 55, ["hemoglobin-low"]),
])
def test_sex_filter(sex: str | None, value: float, rules: list[str]) -> None:
    event = lab_result("718-7", value, "g/L", sex=sex)
    if sex is None:
        event["patient"]["sex"] = None
    assert [h.rule_id for h in evaluate(event, FILTERED)] == rules


@pytest.mark.parametrize(("patient_class", "rules"), [
    ("E", ["potassium-high-ed"]), ("e", ["potassium-high-ed"]), ("I", []), (None, []),
])
def test_patient_class_filter(patient_class: str | None, rules: list[str]) -> None:
    event = lab_result("2823-3", 6.0, "mmol/L", patient_class=patient_class)
    assert [h.rule_id for h in evaluate(event, FILTERED)] == rules
