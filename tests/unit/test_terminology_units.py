"""Lab units: one spelling per unit, and values in the unit Chinese labs report in."""

from __future__ import annotations

import pytest

from streams.terminology.units import (
    CONVERSIONS,
    STANDARD_UNITS,
    needs_unit,
    normalise_unit,
    to_standard,
)


@pytest.mark.parametrize(("raw", "expected"), [
    ("mmol/L", "mmol/L"),
    ("mmol/l", "mmol/L"),
    ("MMOL/L", "mmol/L"),
    (" mmol / L ", "mmol/L"),
    ("ｍｍｏｌ／Ｌ", "mmol/L"),          # full-width
    ("MG/DL", "mg/dL"),
    ("mg/dl", "mg/dL"),
    ("㎎/㎗", "mg/dL"),                # CJK compatibility unit symbols
    ("μmol/L", "umol/L"),              # Greek mu
    ("µmol/L", "umol/L"),              # micro sign
    ("umol/L", "umol/L"),
    ("UMOL/L", "umol/L"),
    ("10^9/L", "10*9/L"),
    ("10*9/L", "10*9/L"),
    ("10**9/L", "10*9/L"),
    ("10E9/L", "10*9/L"),
    ("10e9/l", "10*9/L"),
    ("×10⁹/L", "10*9/L"),             # superscript exponent
    ("x10^9/L", "10*9/L"),
    ("X10^12/L", "10*12/L"),
    ("10¹²/L", "10*12/L"),
    ("10\\S\\9/L", "10*9/L"),          # the HL7 escape, if it was left in
    ("10^3/uL", "10*3/uL"),
    ("10^3/µL", "10*3/uL"),
    ("g/l", "g/L"),
    ("G/DL", "g/dL"),
    ("%", "%"),
    ("％", "%"),
    ("U/L", "U/L"),
    ("u/l", "U/L"),
    ("IU/L", "[IU]/L"),
    ("iu/l", "[IU]/L"),
    ("mIU/mL", "m[IU]/mL"),
    ("mEq/L", "meq/L"),
    ("s", "s"),
    ("sec", "s"),
    ("SEC", "s"),
    ("秒", "s"),
    ("mmHg", "mm[Hg]"),
    ("fL", "fL"),
])
def test_units_are_normalised(raw: str, expected: str) -> None:
    assert normalise_unit(raw) == expected


@pytest.mark.parametrize("raw", [
    "",
    "   ",
    "furlong",
    "mmol",           # no volume
    "10^9/kg",        # a power of ten per something that is not a volume
    "G/L",            # giga per litre or grams per litre: only a map may say
    "T/L",
    "个/HP",
])
def test_units_not_recognised(raw: str) -> None:
    assert normalise_unit(raw) is None


@pytest.mark.parametrize(("loinc", "unit", "value", "expected"), [
    # converted
    ("2345-7", "mg/dL", 90.08, (5.0, "mmol/L")),          # glucose: / 18.016
    ("14749-6", "mg/dL", 126.0, (6.99378, "mmol/L")),
    ("15074-8", "mg/dL", 180.16, (10.0, "mmol/L")),
    ("41653-7", "mg/dL", 72.064, (4.0, "mmol/L")),
    ("2339-0", "mg/dL", 36.032, (2.0, "mmol/L")),
    ("2160-0", "mg/dL", 1.0, (88.42, "umol/L")),           # creatinine: * 88.42
    ("14682-9", "mg/dL", 1.5, (132.63, "umol/L")),
    ("3094-0", "mg/dL", 14.0, (4.998, "mmol/L")),          # urea nitrogen: * 0.357
    ("17861-6", "mg/dL", 10.0, (2.495, "mmol/L")),         # calcium: * 0.2495
    ("1975-2", "mg/dL", 1.0, (17.1, "umol/L")),            # bilirubin: * 17.1
    ("14631-6", "mg/dL", 2.0, (34.2, "umol/L")),
    ("718-7", "g/dL", 13.5, (135.0, "g/L")),               # hemoglobin: * 10
    ("2823-3", "meq/L", 4.1, (4.1, "mmol/L")),             # potassium: * 1
    ("6298-4", "meq/L", 3.9, (3.9, "mmol/L")),
    ("2951-2", "meq/L", 140.0, (140.0, "mmol/L")),         # sodium: * 1
    ("2947-0", "meq/L", 139.0, (139.0, "mmol/L")),
    # already in the standard unit
    ("14749-6", "mmol/L", 5.6, (5.6, "mmol/L")),
    ("718-7", "g/L", 135.0, (135.0, "g/L")),
    # an analyte's unit with no conversion, and an analyte with none: kept as they are
    ("718-7", "mmol/L", 8.4, (8.4, "mmol/L")),
    ("6690-2", "10*9/L", 5.2, (5.2, "10*9/L")),
    (None, "mg/dL", 100.0, (100.0, "mg/dL")),
])
def test_to_standard(loinc: str | None, unit: str, value: float,
                     expected: tuple[float, str]) -> None:
    assert to_standard(loinc, unit, value) == expected


def test_conversion_table_is_keyed_once_per_loinc() -> None:
    codes = [code for conversion in CONVERSIONS for code in conversion.loinc]
    assert len(codes) == len(set(codes)) == len(STANDARD_UNITS) == 16
    assert all(normalise_unit(c.unit) == c.unit for c in CONVERSIONS)
    assert all(normalise_unit(u) == u for c in CONVERSIONS for u in c.factors)


@pytest.mark.parametrize(("loinc", "expected"), [
    ("14749-6", True), ("718-7", True), ("6690-2", False), (None, False),
])
def test_needs_unit(loinc: str | None, expected: bool) -> None:
    assert needs_unit(loinc) is expected
