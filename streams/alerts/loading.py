"""Rule files: the shipped default, a facility's overlay, and a folder of overlays.

The default list ships inside the package (``default_rules.yaml``, read with
importlib.resources so it works from a wheel). A facility's own list is a file
``<FACILITY>.yaml`` in a rules folder, laid over the default::

    facility: QSXRMYY              # optional; must equal the file name when given
    version: "3"                   # required: alerts name "hutong-default-2026.12+QSXRMYY-3"
    label: 青山县人民医院危急值目录（2025版）
    sources: {QS: 青山县人民医院危急值目录 2025版}      # added to the default's A-F
    bands: {adult_years: 14}       # only the keys given change
    escalation:                    # replaces the default plan as a whole
      - {after: 0, notify: ordering-provider}
      - {after: 5m, notify: on-duty-doctor}
    department_groups:             # replaces the named groups, adds new ones
      haematology: [血液科, 血液内科, 十病区]
    ignored_statuses: [D, W, X]    # replaces the default's
    disable: [platelets-high]      # rule ids of the default, removed
    rules:                         # a rule with a default's id replaces it whole; others are added
      - {id: potassium-high, analyte: potassium, codes: [2823-3], unit: mmol/L,
         at_least: 6.5, exclude_bands: [neonate], sources: [QS]}

Rule fields: ``id``; ``kind`` (value, flag, imaging; default value);
``analyte``; ``codes`` (LOINC, check digit verified); ``unit``; one low limit
``below`` (<) or ``at_most`` (≤) and/or one high limit ``above`` (>) or
``at_least`` (≥); ``flag`` (flag rules); ``bands`` / ``exclude_bands``
(neonate, child, adult); ``sex`` (1/male, 2/female); ``departments`` /
``exclude_departments`` (department group names); ``patient_classes`` (I, O,
E, ...); ``first_only``; ``severity`` (critical, panic); ``sources`` (keys of
``sources``).

Nothing is skipped: an unknown key, a duplicate key, a wrong type, a bad LOINC
check digit, an unknown group or source, a disabled rule that does not exist —
each is a :class:`RuleFileError` naming the file, the rule id and the field,
all problems of a file at once.
"""

from __future__ import annotations

import functools
import importlib.resources
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from streams.alerts.bands import AgeBands
from streams.alerts.parsing import (
    RULE_ID,
    Problem,
    Problems,
    RuleFileError,
    parse_plan,
    parse_rule,
    read_yaml,
    text_field,
    text_list,
)
from streams.alerts.rules import Rule, RuleSet

__all__ = ["DEFAULT_FILE", "RuleBook", "load_default", "load_overlay", "load_rule_book",
           "load_rule_set", "overlay_from_yaml", "rule_set_from_yaml"]

DEFAULT_FILE: Final = "streams/alerts/default_rules.yaml"

_SET_KEYS: Final = frozenset({"name", "version", "label", "sources", "bands", "escalation",
                              "department_groups", "ignored_statuses", "rules"})
_OVERLAY_KEYS: Final = frozenset({"facility", "version", "label", "sources", "bands", "escalation",
                                  "department_groups", "ignored_statuses", "disable", "rules"})


def _header(data: Mapping[str, Any], base: RuleSet | None, problems: Problems
            ) -> dict[str, Any]:
    """The parts a full file and an overlay share, each over ``base`` when given."""
    out: dict[str, Any] = {}
    add = problems.in_file
    sources = dict(base.sources) if base else {}
    raw_sources = data.get("sources", {})
    if not isinstance(raw_sources, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in raw_sources.items()):
        add("sources", "must map source keys to citations")
    else:
        sources.update(raw_sources)
    out["sources"] = sources
    bands = base.bands if base else AgeBands()
    raw_bands = data.get("bands", {})
    if not isinstance(raw_bands, dict) or not set(raw_bands) <= {"neonate_days", "adult_years"} \
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in raw_bands.values()):
        add("bands", "must map neonate_days and/or adult_years to whole numbers")
    else:
        try:
            bands = replace(bands, **raw_bands)
        except ValueError as exc:
            add("bands", str(exc))
    out["bands"] = bands
    groups: dict[str, tuple[str, ...]] = dict(base.department_groups) if base else {}
    raw_groups = data.get("department_groups", {})
    if not isinstance(raw_groups, dict):
        add("department_groups", "must map group names to lists of department names")
    else:
        for name, patterns in raw_groups.items():
            if not isinstance(name, str) or not RULE_ID.fullmatch(name):
                add("department_groups", f"{name!r} is not a usable group name")
                continue
            groups[name] = text_list(patterns, f"department_groups.{name}", add)
            if not groups[name]:
                add(f"department_groups.{name}", "must list at least one department name")
    out["department_groups"] = groups
    if "ignored_statuses" in data:
        out["ignored_statuses"] = frozenset(
            s.upper() for s in text_list(data["ignored_statuses"], "ignored_statuses", add))
    elif base:
        out["ignored_statuses"] = base.ignored_statuses
    if "escalation" in data or base is None:
        out["escalation"] = parse_plan(data.get("escalation"), problems)
    else:
        out["escalation"] = base.escalation
    return out


def _rules(raw: Any, header: Mapping[str, Any], problems: Problems) -> list[Rule]:
    if not isinstance(raw, list):
        problems.add("must be a list of rules", field="rules")
        return []
    rules = [parse_rule(r, i, header["department_groups"], header["sources"], problems)
             for i, r in enumerate(raw)]
    seen: set[str] = set()
    for rule in rules:
        if rule is not None and rule.id in seen:
            problems.add("given twice", field="id", rule_id=rule.id)
        if rule is not None:
            seen.add(rule.id)
    return [r for r in rules if r is not None]


def _unknown_keys(data: Mapping[str, Any], allowed: frozenset[str], problems: Problems) -> None:
    for key in sorted(set(data) - allowed, key=str):
        problems.add("unknown field", field=str(key))


def rule_set_from_yaml(text: str, *, file: str = "<text>") -> RuleSet:
    """A whole rule set from YAML text (the format of ``default_rules.yaml``)."""
    data, problems = read_yaml(text, file), Problems(file)
    _unknown_keys(data, _SET_KEYS, problems)
    add = problems.in_file
    name = text_field(data.get("name"), "name", add)
    version = text_field(data.get("version"), "version", add, allow_int=True)
    label = text_field(data.get("label"), "label", add)
    header = _header(data, None, problems)
    rules = _rules(data.get("rules"), header, problems)
    problems.raise_any()
    try:
        return RuleSet(name=name or "", version=version or "", label=label or "",
                       rules=tuple(rules), **header)
    except ValueError as exc:
        raise RuleFileError(file, [Problem(None, None, str(exc))]) from None


def overlay_from_yaml(base: RuleSet, text: str, *, facility: str, file: str = "<text>") -> RuleSet:
    """``base`` with a facility's file laid over it (see the module docstring)."""
    if base.facility:
        raise ValueError("an overlay goes over the default, not over another facility's set")
    data, problems = read_yaml(text, file), Problems(file)
    _unknown_keys(data, _OVERLAY_KEYS, problems)
    add = problems.in_file
    if "facility" in data and data["facility"] != facility:
        add("facility", f"says another facility than the file name ({facility})")
    version = text_field(data.get("version"), "version", add, allow_int=True)
    label = text_field(data["label"], "label", add) if "label" in data else None
    header = _header(data, base, problems)
    disable = text_list(data.get("disable"), "disable", add)
    rules = _rules(data.get("rules", []), header, problems)
    known = {r.id for r in base.rules}
    for rule_id in disable:
        if rule_id not in known:
            problems.add("is not a rule of the default set", field="disable", rule_id=rule_id)
    for rule in rules:
        if rule.id in disable:
            problems.add("both disabled and given", field="disable", rule_id=rule.id)
    problems.raise_any()
    given = {r.id: r for r in rules}
    merged = [given.pop(r.id, r) for r in base.rules if r.id not in disable]
    merged += [r for r in rules if r.id in given]
    try:
        return RuleSet(name=base.name, version=base.version, label=base.label,
                       rules=tuple(merged), facility=facility, facility_version=version,
                       facility_label=label, disabled=disable, **header)
    except ValueError as exc:
        raise RuleFileError(file, [Problem(None, None, str(exc))]) from None


@functools.cache
def load_default() -> RuleSet:
    """The shipped default list (not a national standard: see its label)."""
    text = importlib.resources.files("streams.alerts").joinpath("default_rules.yaml") \
        .read_text(encoding="utf-8")
    return rule_set_from_yaml(text, file=DEFAULT_FILE)


def _read_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise RuleFileError(str(path), [Problem(None, None, "is not UTF-8 text (save it as UTF-8, "
                                                "not GBK)")]) from None
    except OSError as exc:
        raise RuleFileError(str(path), [Problem(None, None, f"cannot be read "
                                                f"({type(exc).__name__})")]) from None


def load_rule_set(path: Path | str) -> RuleSet:
    """A whole rule set from a file."""
    return rule_set_from_yaml(_read_file(Path(path)), file=str(path))


def load_overlay(base: RuleSet, path: Path | str) -> RuleSet:
    """``base`` with ``<FACILITY>.yaml`` laid over it; the facility id is the file name."""
    path = Path(path)
    return overlay_from_yaml(base, _read_file(path), facility=path.stem, file=str(path))


@dataclass(frozen=True, slots=True)
class RuleBook:
    """The effective rule set of every facility: its own file over the default, else the default."""

    default: RuleSet
    facilities: Mapping[str, RuleSet]

    def for_facility(self, facility_id: str) -> RuleSet:
        return self.facilities.get(facility_id, self.default)


def load_rule_book(folder: Path | str | None, *, default: RuleSet | None = None) -> RuleBook:
    """Every ``<FACILITY>.yaml`` in ``folder`` over the default; no folder, the default alone.

    A ``.yml`` file is refused rather than passed over: a list nobody applies
    would look like a list in force.
    """
    base = default or load_default()
    if folder is None:
        return RuleBook(base, {})
    facilities = {}
    for path in sorted(Path(folder).iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.suffix == ".yml":
            raise RuleFileError(str(path), [Problem(None, None, "name rule files <FACILITY>.yaml")])
        if path.suffix == ".yaml":
            facilities[path.stem] = load_overlay(base, path)
    return RuleBook(base, facilities)
