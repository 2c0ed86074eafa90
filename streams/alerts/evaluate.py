"""Which rules of a rule set a result crosses: :func:`evaluate`.

=================  ===========================================================
event              looked at
=================  ===========================================================
lab-result         the LOINC code (the Coding of field ``test_code``, system
                   LOINC), ``standard_value`` in ``standard_unit`` (else
                   ``value_numeric`` in ``unit``), ``abnormal_flags``, the
                   patient's band, sex, ordering department and class
imaging-report     ``critical_finding``
anything else      nothing
=================  ===========================================================

A result whose status (OBX-11, OBR-25) the rule set ignores (deleted, wrong,
cannot be obtained) raises nothing. A source-flag rule (HH, LL, AA) fires only
when no value rule fired on the same result: one result, one alert, and the
alert names the limit when hutong has one. A lab's flag still fires when
hutong's limit was not crossed, because the facility's own list takes priority.

Rules are found by a dict look-up on the LOINC code, and the patient's band is
worked out only when a crossed rule asks for it, so a result that concerns no
rule costs a few attribute reads. :func:`skipped` says which rules a result
could not be compared with (another unit, no number), for a metric or a data
quality warning: those results are not silently safe.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

from streams.alerts.bands import result_time
from streams.alerts.rules import Rule, RuleSet, unit_key

__all__ = ["Hit", "Skip", "evaluate", "loinc_code", "patient_sex", "skipped"]

_LOINC_SYSTEMS: Final = frozenset({"LOINC", "LN", "http://loinc.org"})
_HL7_SEX: Final = {"1": "1", "2": "2", "M": "1", "F": "2"}


@dataclass(frozen=True, slots=True)
class Hit:
    """A rule that a result crossed: the rule, what was compared, and when the result was."""

    rule: Rule
    #: The result time (:func:`~streams.alerts.bands.result_time`).
    result_at: datetime
    #: The LOINC code compared, if the result has one.
    code: str | None
    #: The value compared and its unit; a flag rule carries the standard value, if any.
    value: float | None
    unit: str | None

    @property
    def rule_id(self) -> str:
        return self.rule.id

    @property
    def description(self) -> str:
        return self.rule.description


@dataclass(frozen=True, slots=True)
class Skip:
    """A rule for the result's code that could not be compared, and why."""

    rule_id: str
    reason: str


def loinc_code(event: dict[str, Any]) -> str | None:
    """The LOINC code code translation gave the test, else the test code if sent as LOINC."""
    for coding in event.get("codes") or ():
        if coding.get("field") == "test_code" and coding.get("system") in _LOINC_SYSTEMS:
            return str(coding.get("code"))
    if event.get("test_system") in _LOINC_SYSTEMS and event.get("test_code"):
        return str(event["test_code"])
    return None


def patient_sex(event: dict[str, Any]) -> str | None:
    """GB/T 2261.1 sex (1 male, 2 female): the translated Coding, else PID-8 if unambiguous."""
    for coding in event.get("codes") or ():
        if coding.get("field") == "patient.sex":
            return _HL7_SEX.get(str(coding.get("code")))
    patient = event.get("patient") or {}
    return _HL7_SEX.get(str(patient.get("sex") or "").strip().upper())


def _measure(event: dict[str, Any]) -> tuple[float | None, str | None]:
    if event.get("standard_value") is not None:
        return float(event["standard_value"]), event.get("standard_unit")
    if event.get("value_numeric") is not None:
        return float(event["value_numeric"]), event.get("unit")
    return None, None


def _birth_date(event: dict[str, Any]) -> date | None:
    born = (event.get("patient") or {}).get("birth_date")
    if isinstance(born, datetime):
        return born.date()
    return born if isinstance(born, date) else None


def _applies(rule: Rule, event: dict[str, Any], rule_set: RuleSet, at: datetime,
             memo: dict[str, Any]) -> bool:
    """Whether the rule's filters let it fire for this patient and order."""
    if rule.bands or rule.exclude_bands:
        if "band" not in memo:
            memo["band"] = rule_set.bands.band(_birth_date(event), at)
        band = memo["band"]
        if rule.bands and band not in rule.bands:
            return False
        if band in rule.exclude_bands:
            return False
    if rule.sexes and patient_sex(event) not in rule.sexes:
        return False
    if rule.patient_classes and \
            str(event.get("patient_class") or "").strip().upper() not in rule.patient_classes:
        return False
    department = event.get("ordering_department")
    if rule.departments and not rule_set.in_groups(department, rule.departments):
        return False
    return not (rule.exclude_departments
                and rule_set.in_groups(department, rule.exclude_departments))


def _ignored(status: Any, rule_set: RuleSet) -> bool:
    return isinstance(status, str) and status.strip().upper() in rule_set.ignored_statuses


def evaluate(event: dict[str, Any], rule_set: RuleSet) -> list[Hit]:
    """The rules ``event`` crosses, in the rule set's order (empty for most results)."""
    event_type = event.get("event_type")
    if event_type == "lab-result":
        return _lab(event, rule_set)
    if event_type == "imaging-report":
        if event.get("critical_finding") is not True or \
                _ignored(event.get("report_status"), rule_set):
            return []
        at, memo = result_time(event), dict[str, Any]()
        return [Hit(rule, at, None, None, None) for rule in rule_set.imaging_rules
                if _applies(rule, event, rule_set, at, memo)]
    return []


def _lab(event: dict[str, Any], rule_set: RuleSet) -> list[Hit]:
    code = loinc_code(event)
    rules = rule_set.value_rules(code)
    flags = event.get("abnormal_flags") if rule_set.has_flag_rules else None
    if not rules and not flags:
        return []
    value, unit = _measure(event)
    crossed: list[Rule] = []
    if rules and value is not None:
        key = unit_key(unit)
        crossed = [rule for rule in rules if rule.takes_unit(key) and rule.crosses(value)]
    if not crossed and not flags:  # most results: no limit crossed, no flag sent
        return []
    if _ignored(event.get("result_status"), rule_set):
        return []
    at, memo = result_time(event), dict[str, Any]()
    hits = [Hit(rule, at, code, value, unit) for rule in crossed
            if _applies(rule, event, rule_set, at, memo)]
    if hits or not flags:
        return hits
    standard = event.get("standard_value")
    value = None if standard is None else float(standard)
    unit = None if standard is None else event.get("standard_unit")
    seen: set[str] = set()
    for sent in flags:
        flag = str(sent).strip().upper()
        if flag in seen:
            continue
        seen.add(flag)
        hits += [Hit(rule, at, code, value, unit) for rule in rule_set.flag_rules(flag)
                 if (not rule.codes or code in rule.codes)
                 and _applies(rule, event, rule_set, at, memo)]
    return hits


def skipped(event: dict[str, Any], rule_set: RuleSet) -> list[Skip]:
    """The value rules for the result's code that it could not be compared with.

    The reason names the units involved, never the value.
    """
    if event.get("event_type") != "lab-result" or _ignored(event.get("result_status"), rule_set):
        return []
    rules = rule_set.value_rules(loinc_code(event))
    if not rules:
        return []
    at, memo = result_time(event), dict[str, Any]()
    value, unit = _measure(event)
    key = unit_key(unit)
    out = []
    for rule in rules:
        if not _applies(rule, event, rule_set, at, memo):
            continue
        if value is None:
            out.append(Skip(rule.id, "no numeric value"))
        elif not rule.takes_unit(key):
            out.append(Skip(rule.id, f"unit {unit!r} is not the rule's {rule.unit!r}"))
    return out
