"""The shipped default list, limit by limit, and the small parts a rule is made of."""

from __future__ import annotations

from datetime import timedelta

import pytest

from streams.alerts import evaluate, load_default, parse_duration
from streams.alerts.rules import Limit, Rule, loinc_check_digit_ok, unit_key
from tests.unit.test_alerts_events import ADULT_BORN, NEONATE_BORN, lab_result

#: Every value rule of default_rules.yaml, written out again so that a change to the
#: file is a change here too: code, unit, comparison, limit, patient, department.
DEFAULT_LIMITS: dict[str, tuple[str, str, str, float, str, str | None]] = {
    "potassium-low": ("2823-3", "mmol/L", "<", 2.8, "adult", None),
    "potassium-high": ("2823-3", "mmol/L", ">", 6.2, "adult", None),
    "potassium-low-neonate": ("6298-4", "mmol/L", "<", 3.5, "neonate", None),
    "potassium-high-neonate": ("2823-3", "mmol/L", ">", 6.0, "neonate", None),
    "sodium-low": ("2951-2", "mmol/L", "<", 120, "adult", None),
    "sodium-high": ("2947-0", "mmol/L", ">", 160, "adult", None),
    "sodium-low-neonate": ("2951-2", "mmol/L", "<", 125, "neonate", None),
    "sodium-high-neonate": ("2951-2", "mmol/L", ">", 155, "neonate", None),
    "calcium-low": ("2000-8", "mmol/L", "<", 1.5, "neonate", None),
    "calcium-high": ("17861-6", "mmol/L", ">", 3.5, "adult", None),
    "glucose-low": ("14749-6", "mmol/L", "<", 2.8, "adult", None),
    "glucose-high": ("2345-7", "mmol/L", ">", 24.8, "adult", None),
    "glucose-low-neonate": ("41653-7", "mmol/L", "<=", 2.6, "neonate", None),
    "glucose-high-neonate": ("15074-8", "mmol/L", ">=", 30, "neonate", None),
    "ph-low": ("2744-1", "1", "<", 7.20, "adult", None),
    "ph-high": ("2744-1", "[pH]", ">", 7.60, "adult", None),
    "hemoglobin-low": ("718-7", "g/L", "<", 60, "adult", None),
    "hemoglobin-low-neonate": ("718-7", "g/L", "<", 95, "neonate", None),
    "platelets-low": ("777-3", "10*9/L", "<", 20, "adult", None),
    "platelets-high": ("777-3", "10*9/L", ">", 1000, "adult", None),
    "platelets-high-haematology": ("777-3", "10*9/L", ">=", 1000, "adult", "血液科"),
    "wbc-low": ("6690-2", "10*9/L", "<=", 2.0, "adult", None),
    "wbc-low-haematology": ("26464-8", "10*9/L", "<=", 0.5, "adult", "血液内科二病区"),
    "wbc-high": ("6690-2", "10*9/L", ">", 30, "adult", None),
    "wbc-low-neonate": ("6690-2", "10*9/L", "<", 2.5, "neonate", None),
    "wbc-high-neonate": ("6690-2", "10*9/L", ">=", 50, "neonate", None),
    "pt-high": ("5902-2", "s", ">", 35, "adult", None),
    "aptt-high": ("14979-9", "s", ">", 60, "adult", None),
    "aptt-high-neonate": ("3173-2", "s", ">", 45, "neonate", None),
    "inr-high": ("6301-6", "1", ">", 3.5, "adult", None),
    "inr-high-neonate": ("34714-6", "{INR}", ">", 5.0, "neonate", None),
    "fibrinogen-low": ("3255-7", "g/L", "<", 1.0, "adult", None),
    "creatinine-high": ("14682-9", "umol/L", ">", 450, "adult", None),
    "creatinine-high-nephrology": ("2160-0", "µmol/L", ">", 1200, "adult", "肾内科"),
    "creatinine-high-neonate": ("14682-9", "umol/L", ">", 106, "neonate", None),
    "urea-high": ("22664-7", "mmol/L", ">", 35, "adult", None),
    "bilirubin-high-neonate": ("14631-6", "umol/L", ">", 256, "neonate", None),
}


def _step(limit: float) -> float:
    return 0.1 if limit < 10 else 1.0


def _boundary_cases() -> list[tuple[str, float, bool]]:
    cases = []
    for rule_id, (_, _, op, limit, _, _) in DEFAULT_LIMITS.items():
        outwards = _step(limit) * (1 if ">" in op else -1)
        cases += [
            (rule_id, round(limit - outwards, 3), False),  # just inside
            (rule_id, limit, "=" in op),  # on the limit: only ≤ and ≥ fire
            (rule_id, round(limit + outwards, 3), True),  # just outside
        ]
    return cases


@pytest.mark.parametrize(("rule_id", "value", "fires"), _boundary_cases())
def test_each_default_limit(rule_id: str, value: float, fires: bool) -> None:
    code, unit, _, _, band, department = DEFAULT_LIMITS[rule_id]
    event = lab_result(code, value, unit, ordering_department=department or "心内科",
                       birth_date=NEONATE_BORN if band == "neonate" else ADULT_BORN)
    fired = {hit.rule_id for hit in evaluate(event, load_default())}
    assert (rule_id in fired) is fires


def test_the_table_covers_every_default_value_rule() -> None:
    rules = {r.id for r in load_default().rules if r.kind == "value"}
    assert rules == set(DEFAULT_LIMITS)


def test_the_default_is_labelled_as_no_national_standard() -> None:
    default = load_default()
    assert default.id == "hutong-default-2026.12"
    assert "非国家标准" in default.label and "NOT a national standard" in default.label
    assert "published hospital lists" in default.label


def test_every_default_value_rule_cites_published_lists() -> None:
    default = load_default()
    for rule in default.rules:
        assert rule.sources, rule.id
        if rule.kind == "value":
            assert set(rule.sources) <= set("ABCDEF"), rule.id
    assert {"A", "B", "C", "D", "E", "F"} <= set(default.sources)


def test_the_default_escalation_plan() -> None:
    plan = load_default().escalation
    assert [(s.after, s.notify) for s in plan] == [
        (timedelta(0), "ordering-provider"),
        (timedelta(minutes=10), "on-duty-doctor"),
        (timedelta(minutes=15), "medical-affairs"),
    ]


@pytest.mark.parametrize(("rule", "description"), [
    (Rule("k", analyte="potassium", codes=("2823-3",), unit="mmol/L", high=Limit(6.2),
          exclude_bands=frozenset({"neonate"})), "potassium > 6.2 mmol/L (except neonates)"),
    (Rule("k", analyte="potassium", codes=("2823-3",), unit="mmol/L", high=Limit(6.2),
          bands=frozenset({"adult"})), "potassium > 6.2 mmol/L (adult)"),
    (Rule("g", analyte="glucose", codes=("14749-6",), unit="mmol/L", low=Limit(2.6, True),
          bands=frozenset({"neonate"})), "glucose ≤ 2.6 mmol/L (neonate)"),
    (Rule("n", analyte="sodium", codes=("2951-2",), unit="mmol/L", low=Limit(120),
          high=Limit(160)), "sodium < 120 or > 160 mmol/L"),
    (Rule("p", analyte="pH", codes=("2744-1",), unit="1", low=Limit(7.2)), "pH < 7.2"),
    (Rule("plt", analyte="platelets", codes=("777-3",), unit="10*9/L",
          high=Limit(1000, True), departments=("haematology",), first_only=True),
     "platelets ≥ 1000 10*9/L (in haematology; first report only)"),
    (Rule("h", analyte="hemoglobin", codes=("718-7",), unit="g/L", low=Limit(70),
          sexes=frozenset({"2"}), patient_classes=frozenset({"O", "E"})),
     "hemoglobin < 70 g/L (female; patient class E/O)"),
    (Rule("flag-HH", kind="flag", flag="HH"), "flagged HH (critical high) by the laboratory"),
    (Rule("pacs", kind="imaging"), "critical finding marked by the radiologist"),
])
def test_descriptions_are_built_from_the_rule(rule: Rule, description: str) -> None:
    assert rule.description == description


@pytest.mark.parametrize(("low", "high", "value", "crosses"), [
    (Limit(2.8), None, 2.8, False),
    (Limit(2.8), None, 2.8 - 1e-12, False),  # conversion noise is the limit itself
    (Limit(2.8), None, 2.79, True),
    (Limit(2.6, True), None, 2.6 + 1e-12, True),
    (Limit(2.6, True), None, 2.61, False),
    (None, Limit(6.2), 6.2 + 1e-12, False),
    (None, Limit(6.2), 6.21, True),
    (None, Limit(30, True), 30 - 1e-12, True),
    (None, Limit(30, True), 29.99, False),
    (Limit(120), Limit(160), 140, False),
    (Limit(120), Limit(160), 119, True),
    (Limit(120), Limit(160), 161, True),
    (Limit(120), Limit(160), float("nan"), False),
])
def test_limits(low: Limit | None, high: Limit | None, value: float, crosses: bool) -> None:
    rule = Rule("r", codes=("2823-3",), unit="mmol/L", low=low, high=high)
    assert rule.crosses(value) is crosses


@pytest.mark.parametrize(("a", "b", "same"), [
    ("mmol/L", "mmol/L", True),
    ("mmol/L", " mmol/l ", True),
    ("umol/L", "µmol/L", True),
    ("umol/L", "μmol/L", True),  # Greek mu
    ("1", None, True),
    ("1", "[pH]", True),
    ("1", "{INR}", True),
    ("mmol/L", "mg/dL", False),
    ("g/L", "G/L", False),  # gram is not giga
    ("10*9/L", "10*12/L", False),
    ("1", "%", False),
])
def test_unit_comparison(a: str, b: str | None, same: bool) -> None:
    assert (unit_key(a) == unit_key(b)) is same


@pytest.mark.parametrize(("text", "span"), [
    ("0", timedelta(0)),
    ("90s", timedelta(seconds=90)),
    ("10m", timedelta(minutes=10)),
    ("1h", timedelta(hours=1)),
    ("1h30m", timedelta(minutes=90)),
    ("2d", timedelta(days=2)),
    ("500ms", timedelta(milliseconds=500)),
    ("1.5s", timedelta(seconds=1.5)),
])
def test_durations(text: str, span: timedelta) -> None:
    assert parse_duration(text) == span


@pytest.mark.parametrize("text", ["", "10", "10 m", "m", "10min", "-5s", "1h 30m", "5s5"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


@pytest.mark.parametrize(("code", "valid"), [
    ("2823-3", True), ("718-7", True), ("14749-6", True), ("2000-8", True),
    ("2823-4", False), ("2832-3", False), ("2823", False), ("LOINC-1", False), ("", False),
])
def test_loinc_check_digits(code: str, valid: bool) -> None:
    assert loinc_check_digit_ok(code) is valid


def test_band_cut_offs_are_part_of_the_rule_set() -> None:
    bands = load_default().bands
    assert (bands.neonate_days, bands.adult_years) == (28, 18)
