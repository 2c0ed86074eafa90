"""Reading the entries of a rule file: fields, rules and escalation steps.

Each reader takes the raw YAML value and a place to report to; a problem is
recorded with the rule id and field it concerns and reading goes on, so that
:class:`RuleFileError` can name everything wrong in a file at once. The YAML
itself is read by a safe loader that also refuses a key given twice, which
PyYAML would otherwise settle silently by keeping the last.

    HutongError
    └── RuleFileError       a rule file that cannot be used
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any, Final, NamedTuple

import yaml

from hutong.errors import HutongError
from streams.alerts.bands import BANDS
from streams.alerts.rules import (
    KINDS,
    SEVERITIES,
    EscalationStep,
    Limit,
    Rule,
    loinc_check_digit_ok,
    parse_duration,
)

__all__ = ["RULE_ID", "Problem", "Problems", "RuleFileError", "number", "parse_plan",
           "parse_rule", "read_yaml", "text_field", "text_list"]

RULE_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_RULE_KEYS: Final = frozenset({"id", "kind", "analyte", "codes", "unit", "below", "at_most",
                               "above", "at_least", "flag", "bands", "exclude_bands", "sex",
                               "departments", "exclude_departments", "patient_classes",
                               "first_only", "severity", "sources"})
_LIMIT_KEYS: Final = ("below", "at_most", "above", "at_least")
_SEX_WORDS: Final = {"1": "1", "2": "2", "male": "1", "female": "2"}


class Problem(NamedTuple):
    """One thing wrong in a rule file, and where."""

    rule_id: str | None
    field: str | None
    reason: str

    def __str__(self) -> str:
        place = [f"rule {self.rule_id!r}"] if self.rule_id else []
        place += [f"field {self.field!r}"] if self.field else []
        return f"{', '.join(place)}: {self.reason}" if place else self.reason


class RuleFileError(HutongError):
    """A rule file that cannot be used; ``problems`` lists everything wrong in it."""

    def __init__(self, file: str, problems: Sequence[Problem]) -> None:
        self.file = file
        self.problems = tuple(problems)
        super().__init__(f"{file}: " + "; ".join(str(p) for p in self.problems))

    @property
    def rule_id(self) -> str | None:
        return self.problems[0].rule_id if self.problems else None

    @property
    def field(self) -> str | None:
        return self.problems[0].field if self.problems else None


class Problems:
    """The problems found in one file so far; :meth:`raise_any` at the end of reading it."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.found: list[Problem] = []

    def add(self, reason: str, *, field: str | None = None, rule_id: str | None = None) -> None:
        self.found.append(Problem(rule_id, field, reason))

    def for_rule(self, rule_id: str) -> Callable[[str, str], None]:
        def add(field: str, reason: str) -> None:
            self.add(reason, field=field, rule_id=rule_id)
        return add

    def in_file(self, field: str, reason: str) -> None:
        self.add(reason, field=field)

    def raise_any(self) -> None:
        if self.found:
            raise RuleFileError(self.file, self.found)


class _StrictLoader(yaml.SafeLoader):
    """safe_load that refuses a key given twice (PyYAML would keep the last silently)."""


def _no_duplicates(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[str] = set()
    for key_node, _ in node.value:
        if isinstance(key_node, yaml.ScalarNode):
            if key_node.value in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key_node.value!r}", key_node.start_mark)
            seen.add(key_node.value)
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def read_yaml(text: str, file: str) -> dict[str, Any]:
    """The top-level mapping of a rule file; its line number when the YAML is broken."""
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "unreadable"
        raise RuleFileError(file, [Problem(None, None, f"not valid YAML{where}: {problem}")]) \
            from None
    if not isinstance(data, dict):
        raise RuleFileError(file, [Problem(None, None, "must be a YAML mapping")])
    return data


def text_field(value: Any, field: str, add: Callable[[str, str], None], *,
               allow_int: bool = False) -> str | None:
    """Trimmed text; with ``allow_int`` a whole number too (a version ``3``, not ``2026.10``)."""
    if isinstance(value, int) and not isinstance(value, bool) and allow_int:
        return str(value)
    if not isinstance(value, str) or not value.strip():
        add(field, "must be non-empty text" + (" (quote numbers)" if allow_int else ""))
        return None
    return value.strip()


def text_list(value: Any, field: str, add: Callable[[str, str], None]) -> tuple[str, ...]:
    """A list of trimmed texts; one text alone is a list of one, nothing is an empty list."""
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) and i.strip() for i in items):
        add(field, "must be a list of non-empty text")
        return ()
    return tuple(i.strip() for i in items)


def number(value: Any, field: str, add: Callable[[str, str], None]) -> float | None:
    """A finite number: not ``true``, not ``"6.2"``, not ``.nan``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        add(field, "must be a finite number")
        return None
    return float(value)


def parse_rule(raw: Any, index: int, groups: Mapping[str, Any], sources: Mapping[str, str],
               problems: Problems) -> Rule | None:
    """The rule at ``rules[index]``, or None with its problems recorded.

    ``groups`` and ``sources`` are the rule set's, which the rule's
    department and source names must be among.
    """
    if not isinstance(raw, dict):
        problems.add("must be a mapping", field=f"rules[{index}]")
        return None
    rule_id = raw.get("id")
    if not isinstance(rule_id, str) or not RULE_ID.fullmatch(rule_id):
        problems.add("must be letters, digits, '.', '_' or '-'", field=f"rules[{index}].id")
        return None
    add = problems.for_rule(rule_id)
    before = len(problems.found)
    for key in sorted(raw.keys() - _RULE_KEYS, key=str):
        add(str(key), "unknown field")
    kind = raw.get("kind", "value")
    if kind not in KINDS:
        add("kind", f"must be one of {', '.join(KINDS)}")
    codes = text_list(raw.get("codes"), "codes", add)
    for code in codes:
        if not loinc_check_digit_ok(code):
            add("codes", f"{code!r} is not a LOINC code, or its check digit is wrong")
    limits = {key: number(raw[key], key, add) for key in _LIMIT_KEYS if key in raw}
    low = _limit(limits, "below", "at_most", add)
    high = _limit(limits, "above", "at_least", add)
    unit = text_field(raw["unit"], "unit", add) if "unit" in raw else None
    flag = text_field(raw["flag"], "flag", add) if "flag" in raw else None
    _check_kind(kind, raw, codes, low, high, add)
    bands = _bands(raw, "bands", add)
    exclude_bands = _bands(raw, "exclude_bands", add)
    if bands & exclude_bands:
        add("exclude_bands", "a band cannot be both required and excluded")
    departments = _names(raw, "departments", groups, "a department group of the rule set", add)
    exclude_departments = _names(raw, "exclude_departments", groups,
                                 "a department group of the rule set", add)
    rule_sources = _names(raw, "sources", sources, "a key of the rule set's sources", add)
    first_only = raw.get("first_only", False)
    if not isinstance(first_only, bool):
        add("first_only", "must be true or false")
    severity = raw.get("severity", "critical")
    if severity not in SEVERITIES:
        add("severity", f"must be one of {', '.join(SEVERITIES)}")
    analyte = text_field(raw["analyte"], "analyte", add) if "analyte" in raw else ""
    classes = text_list(raw.get("patient_classes"), "patient_classes", add)
    sexes = _sexes(raw.get("sex"), add)
    if len(problems.found) > before:
        return None
    return Rule(id=rule_id, kind=kind, analyte=analyte or "", codes=codes, unit=unit, low=low,
                high=high, flag=flag.upper() if flag else None, bands=bands,
                exclude_bands=exclude_bands, sexes=sexes, departments=departments,
                exclude_departments=exclude_departments,
                patient_classes=frozenset(c.upper() for c in classes),
                first_only=first_only, severity=severity, sources=rule_sources)


def _check_kind(kind: str, raw: Mapping[str, Any], codes: tuple[str, ...], low: Limit | None,
                high: Limit | None, add: Callable[[str, str], None]) -> None:
    """What each kind of rule needs, and what it must not have."""
    if kind == "value":
        if not codes:
            add("codes", "a value rule needs at least one LOINC code")
        if "unit" not in raw:
            add("unit", "a value rule needs the unit its limits are in")
        if not any(key in raw for key in _LIMIT_KEYS):
            add("below", "a value rule needs below, at_most, above or at_least")
        if low is not None and high is not None and low.value >= high.value:
            add("above", "the high limit must be above the low limit")
        if "flag" in raw:
            add("flag", "only flag rules have a flag")
        return
    for key in ("unit", *_LIMIT_KEYS):
        if key in raw:
            add(key, f"a {kind} rule compares no value")
    if kind == "flag" and "flag" not in raw:
        add("flag", "a flag rule needs the OBX-8 flag it looks for (HH, LL, AA)")
    if kind == "imaging" and ("flag" in raw or codes):
        add("flag" if "flag" in raw else "codes", "an imaging rule looks at no test")


def _names(raw: Mapping[str, Any], field: str, known: Mapping[str, Any], what: str,
           add: Callable[[str, str], None]) -> tuple[str, ...]:
    names = text_list(raw.get(field), field, add)
    for name in names:
        if name not in known:
            add(field, f"{name!r} is not {what}")
    return names


def _sexes(value: Any, add: Callable[[str, str], None]) -> frozenset[str]:
    sexes = set()
    for one in value if isinstance(value, list) else [] if value is None else [value]:
        word = str(one).strip().lower()
        if word in _SEX_WORDS:
            sexes.add(_SEX_WORDS[word])
        else:
            add("sex", "must be 1/male or 2/female (GB/T 2261.1)")
    return frozenset(sexes)


def _limit(limits: Mapping[str, float | None], strict: str, inclusive: str,
           add: Callable[[str, str], None]) -> Limit | None:
    if strict in limits and inclusive in limits:
        add(inclusive, f"give {strict} or {inclusive}, not both")
        return None
    value = limits.get(strict)
    if value is not None:
        return Limit(value)
    value = limits.get(inclusive)
    return None if value is None else Limit(value, inclusive=True)


def _bands(raw: Mapping[str, Any], field: str, add: Callable[[str, str], None]) -> frozenset[Any]:
    names = text_list(raw.get(field), field, add)
    for name in names:
        if name not in BANDS:
            add(field, f"{name!r} is not one of {', '.join(BANDS)}")
    return frozenset(n for n in names if n in BANDS)


def parse_plan(raw: Any, problems: Problems) -> tuple[EscalationStep, ...]:
    """The escalation steps: at once first, then each after some time."""
    if not isinstance(raw, list) or not raw:
        problems.add("must be a non-empty list of {after, notify}", field="escalation")
        return ()
    steps = []
    for index, step in enumerate(raw):
        where = f"escalation[{index}]"
        if not isinstance(step, dict) or set(step) != {"after", "notify"}:
            problems.add("must be a mapping of exactly after and notify", field=where)
            continue
        after: timedelta | None = None
        if step["after"] == 0 and not isinstance(step["after"], bool):
            after = timedelta(0)
        elif isinstance(step["after"], str):
            try:
                after = parse_duration(step["after"])
            except ValueError as exc:
                problems.add(str(exc), field=f"{where}.after")
        else:
            problems.add("must be a duration with its unit: 90s, 10m, 1h", field=f"{where}.after")
        notify = step["notify"]
        if not isinstance(notify, str) or not notify.strip():
            problems.add("must be non-empty text", field=f"{where}.notify")
        elif after is not None:
            if index == 0 and after:
                problems.add("the first step is at once: after 0", field=f"{where}.after")
            elif index > 0 and not after:
                problems.add("a later step must wait some time", field=f"{where}.after")
            steps.append(EscalationStep(after, notify.strip()))
    return tuple(steps)
