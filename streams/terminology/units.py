"""Lab units: one UCUM-style spelling per unit, and conversion to the unit Chinese labs report in.

:func:`normalise_unit` reads a unit as a LIS sends it and returns the spelling
hutong stores (UCUM case-sensitive codes: ``mmol/L``, ``umol/L``, ``10*9/L``,
``[IU]/L``, ``meq/L``), or None when the unit is not one it knows:

* full-width characters and symbols such as ``㎎`` and ``㎗`` read as ASCII (NFKC);
* the micro sign and the Greek mu are ``u`` (``µmol/L``, ``μmol/L`` -> ``umol/L``);
* case is ignored (``MG/DL`` -> ``mg/dL``), except that ``G/L`` and ``T/L`` are
  not recognised: in haematology they mean giga (10^9) and tera (10^12) per litre,
  not grams, so only a facility map may say which one a facility means;
* powers of ten in any spelling, with or without a leading multiplication sign
  (``10^9/L``, ``10*9/L``, ``10E9/L``, ``×10⁹/L``, ``10\\S\\9/L``) -> ``10*9/L``;
* ``IU`` -> ``[IU]``, ``mEq`` -> ``meq``, ``sec``/``秒`` -> ``s``, ``mmHg`` -> ``mm[Hg]``.

:func:`to_standard` converts a value to the unit of :data:`CONVERSIONS` for
its LOINC code. The reference (``cn-standards.md`` §6) records that Chinese
labs report in SI units (mmol/L, µmol/L, g/L) and names the LOINC codes; the
factors are the usual molar-mass conversions:

================  ===============  ========  ============================================
analyte           from -> to       factor    basis
================  ===============  ========  ============================================
glucose           mg/dL -> mmol/L  / 18.016  180.16 g/mol
creatinine        mg/dL -> umol/L  * 88.42   113.12 g/mol
urea nitrogen     mg/dL -> mmol/L  * 0.357   28.01 g/mol (the two N of one urea molecule)
calcium, total    mg/dL -> mmol/L  * 0.2495  40.08 g/mol
bilirubin, total  mg/dL -> umol/L  * 17.1    584.66 g/mol
hemoglobin        g/dL -> g/L      * 10      a decilitre is 0.1 L
potassium         meq/L -> mmol/L  * 1       monovalent ion
sodium            meq/L -> mmol/L  * 1       monovalent ion
================  ===============  ========  ============================================

Analytes not in the table are not converted. Any change to a table here
changes :data:`~streams.terminology.tables.TABLES_VERSION`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["CONVERSIONS", "STANDARD_UNITS", "UNITS", "Conversion", "needs_unit",
           "normalise_unit", "to_standard"]

#: Every unit recognised: the spelling hutong writes, then other spellings of it
#: (beyond case, full-width forms and micro signs, which are always accepted).
UNITS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("mol/L", ()),
    ("mmol/L", ()),
    ("umol/L", ()),
    ("nmol/L", ()),
    ("pmol/L", ()),
    ("meq/L", ()),
    ("g/L", ()),
    ("g/dL", ()),
    ("mg/L", ()),
    ("mg/dL", ()),
    ("ug/L", ()),
    ("ug/dL", ()),
    ("ug/mL", ()),
    ("ng/L", ()),
    ("ng/mL", ()),
    ("pg/mL", ()),
    ("U/L", ()),
    ("U/mL", ()),
    ("[IU]/L", ("IU/L",)),
    ("[IU]/mL", ("IU/mL",)),
    ("m[IU]/L", ("mIU/L",)),
    ("m[IU]/mL", ("mIU/mL",)),
    ("u[IU]/mL", ("uIU/mL",)),
    ("%", ()),
    ("fL", ()),
    ("pg", ()),
    ("s", ("sec", "secs", "秒")),
    ("min", ("分钟",)),
    ("mm[Hg]", ("mmHg",)),
    ("kPa", ()),
    ("mm/h", ("mm/hr",)),
)

#: Volumes a power of ten may be counted per (``10*9/L``, ``10*3/uL``).
_VOLUMES = {"l": "L", "dl": "dL", "ml": "mL", "ul": "uL"}
#: Case matters for these: G/L and T/L are counts (giga, tera per litre), g/L is a mass.
_AMBIGUOUS = frozenset({"G/L", "T/L"})

_BY_LOWER: dict[str, str] = {}
for _unit, _others in UNITS:
    for _spelling in (_unit, *_others):
        _BY_LOWER[_spelling.lower()] = _unit

_SUPERSCRIPTS = re.compile("[⁰¹²³⁴⁵⁶⁷⁸⁹]+")
_SUPERSCRIPT_DIGITS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹", "0123456789")
_POWER = re.compile(r"[×xX*]?10(?:\^|\*\*?|[eE])\+?(\d{1,2})/([a-zA-Z]+)")
_SPACE = re.compile(r"\s+")


@lru_cache(maxsize=4096)
def normalise_unit(raw: str) -> str | None:
    """The UCUM-style spelling of a unit as sent; None when the unit is not recognised."""
    text = raw.replace("\\S\\", "^")
    text = _SUPERSCRIPTS.sub(lambda m: "^" + m.group().translate(_SUPERSCRIPT_DIGITS), text)
    text = unicodedata.normalize("NFKC", text).replace("μ", "u")
    text = _SPACE.sub("", text)
    if not text or text in _AMBIGUOUS:
        return None
    power = _POWER.fullmatch(text)
    if power is not None:
        exponent, volume = power.groups()
        per = _VOLUMES.get(volume.lower())
        return None if per is None else f"10*{int(exponent)}/{per}"
    return _BY_LOWER.get(text.lower())


@dataclass(frozen=True, slots=True)
class Conversion:
    """How one analyte's values reach the unit Chinese labs report it in."""

    analyte: str
    loinc: tuple[str, ...]
    #: The unit every value of the analyte is given in.
    unit: str
    #: other unit -> factor: value in ``unit`` = value in the other unit * factor.
    factors: Mapping[str, float]


#: Reference §6 LOINC codes (plus 2339-0, glucose by mass in blood); basis in the docstring.
_CONVERSION_ROWS = (
    # analyte            LOINC codes                               unit      from     factor
    ("glucose",          "2345-7 14749-6 15074-8 41653-7 2339-0", "mmol/L", "mg/dL", 1 / 18.016),
    ("creatinine",       "2160-0 14682-9",                         "umol/L", "mg/dL", 88.42),
    ("urea nitrogen",    "3094-0",                                 "mmol/L", "mg/dL", 0.357),
    ("calcium, total",   "17861-6",                                "mmol/L", "mg/dL", 0.2495),
    ("bilirubin, total", "1975-2 14631-6",                         "umol/L", "mg/dL", 17.1),
    ("hemoglobin",       "718-7",                                  "g/L",    "g/dL",  10.0),
    ("potassium",        "2823-3 6298-4",                          "mmol/L", "meq/L", 1.0),
    ("sodium",           "2951-2 2947-0",                          "mmol/L", "meq/L", 1.0),
)
CONVERSIONS: tuple[Conversion, ...] = tuple(
    Conversion(analyte, tuple(codes.split()), unit, {source: factor})
    for analyte, codes, unit, source, factor in _CONVERSION_ROWS
)

_BY_LOINC: dict[str, Conversion] = {code: c for c in CONVERSIONS for code in c.loinc}
#: LOINC code -> the unit its values are standardised to.
STANDARD_UNITS: Mapping[str, str] = {code: c.unit for code, c in _BY_LOINC.items()}


def to_standard(loinc: str | None, unit: str, value: float) -> tuple[float, str]:
    """``value`` (in the normalised ``unit``) in the standard unit of the analyte ``loinc``.

    An analyte with no :class:`Conversion`, or a unit its conversion does not
    list, keeps its value and unit. Converted values are rounded to 6
    significant digits: the factors carry no more.
    """
    rule = _BY_LOINC.get(loinc) if loinc is not None else None
    if rule is None or unit == rule.unit:
        return value, unit
    factor = rule.factors.get(unit)
    if factor is None:
        return value, unit
    return float(f"{value * factor:.6g}"), rule.unit


def needs_unit(loinc: str | None) -> bool:
    """True when the analyte has a standard unit, so a value without a unit cannot be used."""
    return loinc is not None and loinc in _BY_LOINC
