"""Rule files: facility overlays over the default, and every way a file can be wrong."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from streams.alerts import evaluate, load_default, load_rule_book, load_rule_set
from streams.alerts.loading import overlay_from_yaml, rule_set_from_yaml
from streams.alerts.parsing import RuleFileError
from tests.unit.test_alerts_events import lab_result

DEFAULT = load_default()

QSXRMYY = """\
facility: QSXRMYY
version: "3"
label: 青山县人民医院危急值目录（2025版）
sources: {QS: 青山县人民医院危急值目录 2025版}
bands: {adult_years: 14}
escalation:
  - {after: 0, notify: ordering-provider}
  - {after: 2s, notify: on-duty-doctor}
department_groups:
  haematology: [十病区]
disable: [platelets-high, flag-AA]
rules:
  - {id: potassium-high, analyte: potassium, codes: [2823-3], unit: mmol/L,
     at_least: 6.5, exclude_bands: [neonate], sources: [QS]}
  - {id: lactate-high, analyte: lactate, codes: [32693-4], unit: mmol/L, above: 4,
     sources: [QS]}
"""


def fired(event: dict[str, object], text: str = QSXRMYY) -> list[str]:
    rule_set = overlay_from_yaml(DEFAULT, text, facility="QSXRMYY", file="QSXRMYY.yaml")
    return [hit.rule_id for hit in evaluate(event, rule_set)]


def test_the_overlay_keeps_both_versions_visible() -> None:
    rule_set = overlay_from_yaml(DEFAULT, QSXRMYY, facility="QSXRMYY")
    assert rule_set.id == "hutong-default-2026.12+QSXRMYY-3"
    assert rule_set.label == DEFAULT.label
    assert rule_set.facility_label == "青山县人民医院危急值目录（2025版）"
    assert rule_set.disabled == ("platelets-high", "flag-AA")


@pytest.mark.parametrize(("event", "default_rules", "facility_rules"), [
    # replaced: > 6.2 became ≥ 6.5, in place
    (lab_result("2823-3", 6.4), ["potassium-high"], []),
    (lab_result("2823-3", 6.5), ["potassium-high"], ["potassium-high"]),
    # the replacement lists only 2823-3: whole blood is no longer covered
    (lab_result("6298-4", 6.8), ["potassium-high"], []),
    # disabled
    (lab_result("777-3", 1100, "10*9/L"), ["platelets-high"], []),
    (lab_result(None, None, None, flags=("AA",)), ["flag-AA"], []),
    # added
    (lab_result("32693-4", 4.5), [], ["lactate-high"]),
    # untouched
    (lab_result("2951-2", 119), ["sodium-low"], ["sodium-low"]),
    # the facility's haematology is its ward 10: 1100 there is the first-only row
    (lab_result("777-3", 1100, "10*9/L", ordering_department="十病区"), ["platelets-high"],
     ["platelets-high-haematology"]),
    (lab_result("777-3", 1100, "10*9/L", ordering_department="血液科"),
     ["platelets-high-haematology"], []),
])
def test_overlay_replaces_disables_and_adds(event: dict[str, object], default_rules: list[str],
                                            facility_rules: list[str]) -> None:
    assert [hit.rule_id for hit in evaluate(event, DEFAULT)] == default_rules
    assert fired(event) == facility_rules


def test_overlay_sets_bands_and_escalation() -> None:
    rule_set = overlay_from_yaml(DEFAULT, QSXRMYY, facility="QSXRMYY")
    assert (rule_set.bands.neonate_days, rule_set.bands.adult_years) == (28, 14)
    assert [s.after for s in rule_set.escalation] == [timedelta(0), timedelta(seconds=2)]
    assert rule_set.department_groups["nephrology"] == DEFAULT.department_groups["nephrology"]


def test_a_minimal_overlay_is_the_default_under_another_name() -> None:
    rule_set = overlay_from_yaml(DEFAULT, 'version: "1"\n', facility="F001")
    assert rule_set.id == "hutong-default-2026.12+F001-1"
    assert rule_set.rules == DEFAULT.rules
    assert rule_set.escalation == DEFAULT.escalation


def test_a_folder_of_facility_files(tmp_path: Path) -> None:
    (tmp_path / "QSXRMYY.yaml").write_text(QSXRMYY, encoding="utf-8")
    (tmp_path / "README.md").write_text("not a rule file", encoding="utf-8")
    book = load_rule_book(tmp_path)
    assert book.for_facility("QSXRMYY").id == "hutong-default-2026.12+QSXRMYY-3"
    assert book.for_facility("OTHER") is book.default
    assert load_rule_book(None).for_facility("QSXRMYY").id == "hutong-default-2026.12"


def test_a_yml_file_is_refused_not_passed_over(tmp_path: Path) -> None:
    (tmp_path / "QSXRMYY.yml").write_text(QSXRMYY, encoding="utf-8")
    with pytest.raises(RuleFileError, match=r"QSXRMYY\.yml: name rule files <FACILITY>\.yaml"):
        load_rule_book(tmp_path)


def test_files_that_cannot_be_read(tmp_path: Path) -> None:
    gbk = tmp_path / "QSXRMYY.yaml"
    gbk.write_bytes(QSXRMYY.encode("gbk"))
    with pytest.raises(RuleFileError, match=r"QSXRMYY\.yaml: is not UTF-8 text"):
        load_rule_book(tmp_path)
    with pytest.raises(RuleFileError, match=r"missing\.yaml: cannot be read \(FileNotFoundError\)"):
        load_rule_set(tmp_path / "missing.yaml")


def test_a_whole_rule_set_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "regional.yaml"
    path.write_text("""\
name: regional
version: 1
label: 区域危急值目录
escalation: [{after: 0, notify: ordering-provider}]
rules:
  - {id: potassium-high, analyte: potassium, codes: [2823-3], unit: mmol/L, above: 6.0}
""", encoding="utf-8")
    rule_set = load_rule_set(path)
    assert rule_set.id == "regional-1"
    assert [h.rule_id for h in evaluate(lab_result("2823-3", 6.1), rule_set)] == [
        "potassium-high"]


RULE = "{id: k-high, analyte: potassium, codes: [2823-3], unit: mmol/L, above: 6.2}"


def _overlay(rules: str = "", **top: str) -> str:
    lines = ['version: "1"', *(f"{key}: {value}" for key, value in top.items())]
    return "\n".join(lines) + (f"\nrules:\n{rules}" if rules else "") + "\n"


@pytest.mark.parametrize(("text", "rule_id", "field", "reason"), [
    (_overlay(f"  - {RULE[:-1]}, abvoe: 7}}"), "k-high", "abvoe", "unknown field"),
    (_overlay(f"  - {RULE[:-1]}, at_least: 7}}"), "k-high", "at_least",
     "give above or at_least, not both"),
    (_overlay("  - {id: k-high, codes: [2823-3], unit: mmol/L, above: '6.2'}"), "k-high",
     "above", "must be a finite number"),
    (_overlay("  - {id: k-high, codes: [2823-3], unit: mmol/L, above: .nan}"), "k-high",
     "above", "must be a finite number"),
    (_overlay("  - {id: k-high, codes: [2823-3], unit: mmol/L, above: true}"), "k-high",
     "above", "must be a finite number"),
    (_overlay("  - {id: k-high, codes: [2823-4], unit: mmol/L, above: 6.2}"), "k-high",
     "codes", "'2823-4' is not a LOINC code, or its check digit is wrong"),
    (_overlay("  - {id: k-high, unit: mmol/L, above: 6.2}"), "k-high", "codes",
     "a value rule needs at least one LOINC code"),
    (_overlay("  - {id: k-high, codes: [2823-3], above: 6.2}"), "k-high", "unit",
     "a value rule needs the unit its limits are in"),
    (_overlay("  - {id: k-high, codes: [2823-3], unit: mmol/L}"), "k-high", "below",
     "a value rule needs below, at_most, above or at_least"),
    (_overlay("  - {id: k, codes: [2823-3], unit: mmol/L, below: 7, above: 3}"), "k", "above",
     "the high limit must be above the low limit"),
    (_overlay(f"  - {RULE[:-1]}, bands: [infant]}}"), "k-high", "bands",
     "'infant' is not one of neonate, child, adult"),
    (_overlay(f"  - {RULE[:-1]}, bands: [adult], exclude_bands: [adult]}}"), "k-high",
     "exclude_bands", "a band cannot be both required and excluded"),
    (_overlay(f"  - {RULE[:-1]}, sex: M}}"), "k-high", "sex",
     "must be 1/male or 2/female (GB/T 2261.1)"),
    (_overlay(f"  - {RULE[:-1]}, departments: [cardiology]}}"), "k-high", "departments",
     "'cardiology' is not a department group of the rule set"),
    (_overlay(f"  - {RULE[:-1]}, sources: [Z]}}"), "k-high", "sources",
     "'Z' is not a key of the rule set's sources"),
    (_overlay(f"  - {RULE[:-1]}, first_only: yes please}}"), "k-high", "first_only",
     "must be true or false"),
    (_overlay(f"  - {RULE[:-1]}, severity: urgent}}"), "k-high", "severity",
     "must be one of critical, panic"),
    (_overlay(f"  - {RULE[:-1]}, kind: panel}}"), "k-high", "kind",
     "must be one of value, flag, imaging"),
    (_overlay("  - {id: flag-X, kind: flag}"), "flag-X", "flag",
     "a flag rule needs the OBX-8 flag it looks for (HH, LL, AA)"),
    (_overlay("  - {id: flag-X, kind: flag, flag: HH, above: 3}"), "flag-X", "above",
     "a flag rule compares no value"),
    (_overlay("  - {id: pacs, kind: imaging, codes: [2823-3]}"), "pacs", "codes",
     "an imaging rule looks at no test"),
    (_overlay(f"  - {RULE}\n  - {RULE}"), "k-high", "id", "given twice"),
    (_overlay("  - {id: 'bad id', codes: [2823-3], unit: mmol/L, above: 6.2}"), None,
     "rules[0].id", "must be letters, digits, '.', '_' or '-'"),
    (_overlay("  - just text"), None, "rules[0]", "must be a mapping"),
    (_overlay(disable="[potasium-high]"), "potasium-high", "disable",
     "is not a rule of the default set"),
    (_overlay(f"  - {RULE[:-1].replace('k-high', 'sodium-low')}}}", disable="[sodium-low]"),
     "sodium-low", "disable", "both disabled and given"),
    (_overlay(facility="OTHER"), None, "facility",
     "says another facility than the file name (QSXRMYY)"),
    (_overlay(escalaton="[]"), None, "escalaton", "unknown field"),
    (_overlay(escalation="[{after: 5m, notify: ordering-provider}]"), None,
     "escalation[0].after", "the first step is at once: after 0"),
    (_overlay(escalation="[{after: 0, notify: a}, {after: 0, notify: b}]"), None,
     "escalation[1].after", "a later step must wait some time"),
    (_overlay(escalation="[{after: 0, notify: a}, {after: 10, notify: b}]"), None,
     "escalation[1].after", "must be a duration with its unit: 90s, 10m, 1h"),
    (_overlay(escalation="[{after: 0, notify: a}, {after: 10 min, notify: b}]"), None,
     "escalation[1].after", "not a duration: '10 min' (write e.g. 90s, 10m, 1h)"),
    (_overlay(escalation="[{after: 0, notify: a, to: b}]"), None, "escalation[0]",
     "must be a mapping of exactly after and notify"),
    (_overlay(escalation="[]"), None, "escalation",
     "must be a non-empty list of {after, notify}"),
    (_overlay(bands="{adult_years: 14.5}"), None, "bands",
     "must map neonate_days and/or adult_years to whole numbers"),
    (_overlay(bands="{adult_years: 0}"), None, "bands",
     "adult_years must come after the neonatal period"),
    (_overlay(department_groups="{haematology: []}"), None, "department_groups.haematology",
     "must list at least one department name"),
    ("version: 2026.10\n", None, "version", "must be non-empty text (quote numbers)"),
    ("label: x\n", None, "version", "must be non-empty text (quote numbers)"),
])
def test_loading_errors_name_file_rule_and_field(text: str, rule_id: str | None,
                                                 field: str, reason: str) -> None:
    with pytest.raises(RuleFileError) as caught:
        overlay_from_yaml(DEFAULT, text, facility="QSXRMYY", file="rules/QSXRMYY.yaml")
    error = caught.value
    assert (error.file, error.rule_id, error.field) == ("rules/QSXRMYY.yaml", rule_id, field)
    assert error.problems[0].reason == reason
    assert str(error).startswith("rules/QSXRMYY.yaml: ")
    assert reason in str(error)


@pytest.mark.parametrize(("text", "reason"), [
    ('version: "1"\nversion: "2"\n', "not valid YAML at line 2: duplicate key 'version'"),
    ('version: "1"\nrules:\n  - {id: k, above: 6, above: 7}\n',
     "not valid YAML at line 3: duplicate key 'above'"),
    ("version: [1\n", "not valid YAML at line 2: expected ',' or ']', but got '<stream end>'"),
    ("- a list\n", "must be a YAML mapping"),
    ("", "must be a YAML mapping"),
])
def test_files_that_are_not_rule_files(text: str, reason: str) -> None:
    with pytest.raises(RuleFileError) as caught:
        overlay_from_yaml(DEFAULT, text, facility="QSXRMYY", file="QSXRMYY.yaml")
    assert str(caught.value) == f"QSXRMYY.yaml: {reason}"


def test_every_problem_of_a_file_is_reported_at_once() -> None:
    text = _overlay(f"  - {RULE[:-1]}, abvoe: 7}}\n  - {{id: x, codes: [1-1], unit: s, above: 1}}",
                    disable="[nope]")
    with pytest.raises(RuleFileError) as caught:
        overlay_from_yaml(DEFAULT, text, facility="QSXRMYY", file="QSXRMYY.yaml")
    assert [(p.rule_id, p.field) for p in caught.value.problems] == [
        ("k-high", "abvoe"), ("x", "codes"), ("nope", "disable")]


@pytest.mark.parametrize(("text", "field"), [
    ("version: '1'\nlabel: x\nescalation: [{after: 0, notify: a}]\nrules: []\n", "name"),
    ("name: x\nversion: '1'\nescalation: [{after: 0, notify: a}]\nrules: []\n", "label"),
    ("name: x\nversion: '1'\nlabel: x\nrules: []\n", "escalation"),
    ("name: x\nversion: '1'\nlabel: x\nescalation: [{after: 0, notify: a}]\n", "rules"),
    ("name: x\nversion: '1'\nlabel: x\nescalation: [{after: 0, notify: a}]\nrules: []\n"
     "disable: [a]\n", "disable"),
])
def test_a_whole_rule_set_needs_its_parts(text: str, field: str) -> None:
    with pytest.raises(RuleFileError) as caught:
        rule_set_from_yaml(text, file="x.yaml")
    assert caught.value.field == field


def test_an_overlay_goes_over_the_default_only() -> None:
    facility = overlay_from_yaml(DEFAULT, 'version: "1"\n', facility="F001")
    with pytest.raises(ValueError, match="not over another facility"):
        overlay_from_yaml(facility, 'version: "2"\n', facility="F002")
