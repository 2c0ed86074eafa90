"""Critical-value rules, the rule set that holds them, and its escalation plan.

A :class:`Rule` is one row of a critical-value list (危急值目录). It is one of
three kinds:

=========  ===================================================================
kind       fires when
=========  ===================================================================
value      a lab result whose LOINC code is one of ``codes`` and whose value,
           in exactly ``unit``, crosses ``low`` or ``high``
flag       a lab result carries the OBX-8 flag ``flag`` (HH, LL, AA) as sent:
           the facility's own LIS judged it critical
imaging    an imaging report whose radiologist marked a critical finding
=========  ===================================================================

and it may be narrowed by age band, sex, ordering department, patient class.
Limits are strict unless marked inclusive: ``below: 2.8`` fires on 2.7 and not
on 2.8, ``at_most: 2.6`` fires on 2.6. A value within one part in 10⁹ of a
limit counts as the limit itself, so the rounding of a unit conversion
(mg/dL to mmol/L) cannot carry a value across it.

A result in a unit other than the rule's does not match: hutong never guesses
a conversion here; code translation puts convertible results into the standard
unit first (``standard_value``/``standard_unit``). Units are compared after
trimming, with ``µ`` read as ``u`` and a final ``/l`` as ``/L``; the
dimensionless spellings (none, ``1``, ``[pH]``, ``{INR}``, ``{ratio}``) are one
unit, written ``1`` in rules. :func:`streams.alerts.evaluate.skipped` lists the
rules a result could not be compared with, so the gap is counted, not silent.

A :class:`RuleSet` is a whole list: its rules indexed by code, the age-band
cut-offs, named department groups (a facility fills in its own ward names) and
the :class:`EscalationStep` plan. Files are read by :mod:`.loading`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import Final, Literal

from streams.alerts.bands import BANDS, AgeBands, Band

__all__ = ["DIMENSIONLESS", "KINDS", "SEVERITIES", "SEXES", "EscalationStep", "Kind", "Limit",
           "Rule", "RuleSet", "loinc_check_digit_ok", "parse_duration", "unit_key"]

Kind = Literal["value", "flag", "imaging"]
KINDS: Final[tuple[Kind, ...]] = ("value", "flag", "imaging")
#: critical-alert.avsc: "critical or panic".
SEVERITIES: Final = ("critical", "panic")
#: GB/T 2261.1: 1 male, 2 female.
SEXES: Final = {"1": "male", "2": "female"}
DIMENSIONLESS: Final = "1"

_TOLERANCE: Final = 1e-9
_UNITLESS: Final = frozenset({"", "1", "[pH]", "pH", "{INR}", "INR", "{ratio}", "ratio"})
_PLURAL: Final = {"neonate": "neonates", "child": "children", "adult": "adults"}
_FLAG_WORDS: Final = {"HH": "critical high", "LL": "critical low", "AA": "critical abnormal"}
_DURATION: Final = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS: Final = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_LOINC: Final = re.compile(r"\d{1,7}-\d")


def unit_key(unit: str | None) -> str:
    """The form units are compared in: ``umol/l`` and ``µmol/L`` agree, ``g/L`` and ``G/L`` not."""
    text = (unit or "").strip().replace("µ", "u").replace("μ", "u")
    if text in _UNITLESS:
        return DIMENSIONLESS
    if text.endswith("/l"):
        text = text[:-1] + "L"
    return text


def parse_duration(text: str) -> timedelta:
    """``"10m"``, ``"90s"``, ``"1h30m"``, ``"500ms"``, ``"0"`` as a timedelta.

    Raises ValueError on anything else, so a typo in a plan is not a zero.
    """
    text = text.strip()
    if text == "0":
        return timedelta(0)
    position, seconds = 0, 0.0
    for part in _DURATION.finditer(text):
        if part.start() != position:
            break
        seconds += float(part.group(1)) * _UNIT_SECONDS[part.group(2)]
        position = part.end()
    if position != len(text) or not text:
        raise ValueError(f"not a duration: {text!r} (write e.g. 90s, 10m, 1h)")
    return timedelta(seconds=seconds)


def loinc_check_digit_ok(code: str) -> bool:
    """Whether ``code`` has the LOINC shape and its mod-10 check digit is right."""
    if not _LOINC.fullmatch(code):
        return False
    body, check = code.split("-")
    total = 0
    for position, char in enumerate(reversed(body)):
        digit = int(char) * (2 if position % 2 == 0 else 1)
        total += digit // 10 + digit % 10
    return (10 - total % 10) % 10 == int(check)


def _number(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True, slots=True)
class Limit:
    """One side of a rule: fires beyond ``value``, or at it too when ``inclusive``."""

    value: float
    inclusive: bool = False


@dataclass(frozen=True, slots=True)
class EscalationStep:
    """Whom to tell, ``after`` the previous step was reached without an acknowledgement."""

    after: timedelta
    notify: str


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of a critical-value list (see the module docstring for the kinds)."""

    id: str
    kind: Kind = "value"
    #: English analyte name, used in the description: "potassium".
    analyte: str = ""
    #: LOINC codes; a flag rule with none applies to every test.
    codes: tuple[str, ...] = ()
    #: The unit the limits are in (UCUM-style); value rules only.
    unit: str | None = None
    low: Limit | None = None
    high: Limit | None = None
    #: The OBX-8 flag a flag rule looks for.
    flag: str | None = None
    #: Fires only for these bands (a patient of unknown age is in none).
    bands: frozenset[Band] = frozenset()
    #: Fires except for these bands (a patient of unknown age is in none).
    exclude_bands: frozenset[Band] = frozenset()
    #: GB/T 2261.1 codes; fires only for these (unknown sex is in none).
    sexes: frozenset[str] = frozenset()
    #: Department group names of the rule set: ordering department in one of them.
    departments: tuple[str, ...] = ()
    #: Department group names: never for an ordering department in one of them.
    exclude_departments: tuple[str, ...] = ()
    #: PV1-2 classes (I, O, E, ...); fires only for these (unknown class is in none).
    patient_classes: frozenset[str] = frozenset()
    #: Only the first occurrence per patient (and facility) is reported.
    first_only: bool = False
    severity: str = "critical"
    #: Which published lists (reference §4.3, letters A-F) the row comes from.
    sources: tuple[str, ...] = ()
    description: str = field(init=False, default="")
    _low_cut: float | None = field(init=False, default=None, repr=False, compare=False)
    _high_cut: float | None = field(init=False, default=None, repr=False, compare=False)
    _unit_key: str = field(init=False, default="", repr=False, compare=False)

    def __post_init__(self) -> None:
        # Each side becomes one strict comparison: inclusive limits move the cut outwards.
        if self.low is not None:
            tol = _TOLERANCE * max(1.0, abs(self.low.value))
            object.__setattr__(self, "_low_cut",
                               self.low.value + (tol if self.low.inclusive else -tol))
        if self.high is not None:
            tol = _TOLERANCE * max(1.0, abs(self.high.value))
            object.__setattr__(self, "_high_cut",
                               self.high.value + (-tol if self.high.inclusive else tol))
        object.__setattr__(self, "_unit_key", unit_key(self.unit))
        object.__setattr__(self, "description", self._describe())

    def crosses(self, value: float) -> bool:
        """Whether ``value`` (in the rule's unit) is beyond a limit."""
        return (self._low_cut is not None and value < self._low_cut) or \
            (self._high_cut is not None and value > self._high_cut)

    def takes_unit(self, key: str) -> bool:
        """Whether a result whose :func:`unit_key` is ``key`` can be compared."""
        return key == self._unit_key

    def _describe(self) -> str:
        if self.kind == "flag":
            words = _FLAG_WORDS.get(self.flag or "")
            head = f"flagged {self.flag}" + (f" ({words})" if words else "") + " by the laboratory"
            if self.codes:
                head = f"{self.analyte or '/'.join(self.codes)} {head}"
        elif self.kind == "imaging":
            head = "critical finding marked by the radiologist"
        else:
            sides = []
            if self.low is not None:
                sides.append(f"{'≤' if self.low.inclusive else '<'} {_number(self.low.value)}")
            if self.high is not None:
                sides.append(f"{'≥' if self.high.inclusive else '>'} {_number(self.high.value)}")
            unit = "" if self._unit_key == DIMENSIONLESS else f" {self.unit}"
            head = f"{self.analyte or '/'.join(self.codes)} {' or '.join(sides)}{unit}"
        qualifiers = self._qualifiers()
        return head + (f" ({'; '.join(qualifiers)})" if qualifiers else "")

    def _qualifiers(self) -> list[str]:
        words = []
        if self.bands:
            words.append(" or ".join(b for b in BANDS if b in self.bands))
        if self.exclude_bands:
            words.append("except " + " or ".join(_PLURAL[b] for b in BANDS
                                                 if b in self.exclude_bands))
        if self.sexes:
            words.append(" or ".join(SEXES.get(s, s) for s in sorted(self.sexes)))
        if self.departments:
            words.append("in " + " or ".join(self.departments))
        if self.exclude_departments:
            words.append("except " + " or ".join(self.exclude_departments))
        if self.patient_classes:
            words.append("patient class " + "/".join(sorted(self.patient_classes)))
        if self.first_only:
            words.append("first report only")
        return words


@dataclass(frozen=True, slots=True)
class RuleSet:
    """A whole critical-value list, ready to evaluate: rules indexed by code and by flag."""

    name: str
    version: str
    label: str
    rules: tuple[Rule, ...]
    escalation: tuple[EscalationStep, ...]
    bands: AgeBands = field(default_factory=AgeBands)
    #: Group name -> substrings of ordering-department names (compared case-insensitively).
    department_groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Source key -> citation, for the keys rules list in ``sources``.
    sources: Mapping[str, str] = field(default_factory=dict)
    #: OBX-11 statuses never evaluated: D deleted, W wrong (retracted), X cannot be obtained.
    ignored_statuses: frozenset[str] = frozenset({"D", "W", "X"})
    #: The facility whose file was laid over the default, its file's version and label.
    facility: str | None = None
    facility_version: str | None = None
    facility_label: str | None = None
    #: Rule ids the facility file disabled.
    disabled: tuple[str, ...] = ()
    _by_code: Mapping[str, tuple[Rule, ...]] = field(init=False, repr=False, compare=False)
    _by_flag: Mapping[str, tuple[Rule, ...]] = field(init=False, repr=False, compare=False)
    _imaging: tuple[Rule, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ids = [rule.id for rule in self.rules]
        if len(set(ids)) != len(ids):
            raise ValueError("rule ids must be unique")
        groups = {name: tuple(p.casefold() for p in patterns)
                  for name, patterns in self.department_groups.items()}
        for rule in self.rules:
            missing = set(rule.departments + rule.exclude_departments) - groups.keys()
            if missing:
                raise ValueError(f"rule {rule.id!r} names undefined department groups "
                                 f"{sorted(missing)}")
        if not self.escalation or self.escalation[0].after:
            raise ValueError("the escalation plan must start with a step after 0")
        if any(step.after <= timedelta(0) for step in self.escalation[1:]):
            raise ValueError("every escalation step after the first must wait some time")
        object.__setattr__(self, "department_groups", MappingProxyType(groups))
        by_code: dict[str, list[Rule]] = {}
        by_flag: dict[str, list[Rule]] = {}
        for rule in self.rules:
            if rule.kind == "value":
                for code in rule.codes:
                    by_code.setdefault(code, []).append(rule)
            elif rule.kind == "flag" and rule.flag:
                by_flag.setdefault(rule.flag, []).append(rule)
        object.__setattr__(self, "_by_code", MappingProxyType(
            {code: tuple(rules) for code, rules in by_code.items()}))
        object.__setattr__(self, "_by_flag", MappingProxyType(
            {flag: tuple(rules) for flag, rules in by_flag.items()}))
        object.__setattr__(self, "_imaging", tuple(r for r in self.rules if r.kind == "imaging"))

    @property
    def id(self) -> str:
        """What an alert's ``rule_set`` names: "hutong-default-2026.12+QSXRMYY-3"."""
        base = f"{self.name}-{self.version}"
        return f"{base}+{self.facility}-{self.facility_version}" if self.facility else base

    def rule(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)

    def value_rules(self, code: str | None) -> tuple[Rule, ...]:
        """The value rules for a LOINC code, in file order."""
        return self._by_code.get(code, ()) if code else ()

    def flag_rules(self, flag: str) -> tuple[Rule, ...]:
        return self._by_flag.get(flag, ())

    @property
    def has_flag_rules(self) -> bool:
        return bool(self._by_flag)

    @property
    def imaging_rules(self) -> tuple[Rule, ...]:
        return self._imaging

    def in_groups(self, department: str | None, groups: Iterable[str]) -> bool:
        """Whether an ordering department belongs to any of the named groups."""
        if not department:
            return False
        text = department.casefold()
        return any(p in text for g in groups for p in self.department_groups.get(g, ()))
