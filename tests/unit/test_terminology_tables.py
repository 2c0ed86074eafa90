"""The built-in tables (reference §3) and the shapes of LOINC and ICD-10 codes (§6, §7)."""

from __future__ import annotations

import pytest

from streams.terminology.shapes import icd10_code, is_icd10_system, is_loinc, is_loinc_system
from streams.terminology.tables import (
    BUILTIN_TABLES,
    BUILTIN_VERSION,
    ETHNICITY_TABLE,
    ID_DOCUMENT_TABLE,
    MARITAL_TABLE,
    SEX_TABLE,
    TABLES_VERSION,
    BuiltinTable,
)


@pytest.mark.parametrize(("raw", "expected"), [
    ("M", ("1", "男性")), ("m", ("1", "男性")), ("F", ("2", "女性")),
    ("U", ("0", "未知的性别")), ("O", ("9", "未说明的性别")), ("A", ("9", "未说明的性别")),
    ("N", ("9", "未说明的性别")),
    ("0", ("0", "未知的性别")), ("1", ("1", "男性")), ("2", ("2", "女性")),
    ("9", ("9", "未说明的性别")), ("１", ("1", "男性")),   # full-width digit
    ("男", ("1", "男性")), ("男性", ("1", "男性")), ("女", ("2", "女性")),
    ("女性", ("2", "女性")), ("未知", ("0", "未知的性别")), (" F ", ("2", "女性")),
])
def test_sex(raw: str, expected: tuple[str, str]) -> None:
    assert SEX_TABLE.lookup(raw) == expected
    assert SEX_TABLE.system == "GB/T 2261.1"


@pytest.mark.parametrize(("raw", "expected"), [
    ("S", "10"), ("M", "20"), ("D", "40"), ("W", "30"), ("A", "20"), ("U", "90"),
    ("10", "10"), ("20", "20"), ("21", "21"), ("22", "22"), ("23", "23"), ("30", "30"),
    ("40", "40"), ("90", "90"), ("未婚", "10"), ("已婚", "20"), ("丧偶", "30"),
    ("离婚", "40"), ("离异", "40"),
])
def test_marital_status(raw: str, expected: str) -> None:
    found = MARITAL_TABLE.lookup(raw)
    assert found is not None and found[0] == expected
    assert MARITAL_TABLE.system == "GB/T 2261.2"


@pytest.mark.parametrize(("raw", "expected"), [
    ("01", ("01", "汉族")), ("汉族", ("01", "汉族")), ("汉", ("01", "汉族")),
    ("02", ("02", "蒙古族")), ("蒙古", ("02", "蒙古族")),
    ("17", ("17", "哈萨克族")), ("维吾尔族", ("05", "维吾尔族")),
    ("土族", ("30", "土族")), ("土家族", ("15", "土家族")), ("土家", ("15", "土家族")),
    ("柯尔克孜", ("29", "柯尔克孜族")), ("56", ("56", "基诺族")), ("基诺族", ("56", "基诺族")),
])
def test_ethnicity(raw: str, expected: tuple[str, str]) -> None:
    assert ETHNICITY_TABLE.lookup(raw) == expected
    assert ETHNICITY_TABLE.system == "GB 3304"


def test_ethnicity_has_the_56_verified_codes_only() -> None:
    assert sorted(ETHNICITY_TABLE.codes) == [f"{n:02d}" for n in range(1, 57)]


@pytest.mark.parametrize(("table", "raw"), [
    (SEX_TABLE, "X"), (SEX_TABLE, "3"), (SEX_TABLE, "MALEFEMALE"),
    (MARITAL_TABLE, "C"), (MARITAL_TABLE, "P"), (MARITAL_TABLE, "O"), (MARITAL_TABLE, "1"),
    (ETHNICITY_TABLE, "97"), (ETHNICITY_TABLE, "98"), (ETHNICITY_TABLE, "57"),
    (ETHNICITY_TABLE, "1"), (ETHNICITY_TABLE, "火星族"),
    (ID_DOCUMENT_TABLE, "MR"), (ID_DOCUMENT_TABLE, "PI"), (ID_DOCUMENT_TABLE, "JKK"),
])
def test_values_a_table_does_not_know(table: BuiltinTable, raw: str) -> None:
    assert table.lookup(raw) is None


@pytest.mark.parametrize(("raw", "expected"), [
    ("SFZH", "01"), ("NI", "01"), ("ID", "01"), ("sfzh", "01"), ("身份证", "01"),
    ("01", "01"), ("户口簿", "02"), ("户口本", "02"), ("HZ", "03"), ("PPN", "03"),
    ("护照", "03"), ("军官证", "04"), ("DL", "05"), ("驾驶证", "05"), ("港澳通行证", "06"),
    ("港澳居民来往内地通行证", "06"), ("台湾居民来往内地通行证", "07"), ("台胞证", "07"),
    ("99", "99"),
])
def test_id_document_types(raw: str, expected: str) -> None:
    found = ID_DOCUMENT_TABLE.lookup(raw)
    assert found is not None and found[0] == expected
    assert ID_DOCUMENT_TABLE.system == "CV02.01.101"


def test_one_table_per_kind_and_the_version_names_the_date() -> None:
    assert set(BUILTIN_TABLES) == {"sex", "marital-status", "ethnicity", "id-document-type"}
    assert all(kind == table.kind for kind, table in BUILTIN_TABLES.items())
    assert BUILTIN_VERSION == "builtin-" + TABLES_VERSION


def test_an_alias_of_an_unknown_code_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown code"):
        BuiltinTable("sex", "GB/T 2261.1", {"1": "男性"}, {"M": "3"})


@pytest.mark.parametrize(("code", "expected"), [
    ("2823-3", True), ("6298-4", True), ("2951-2", True), ("2947-0", True),
    ("2345-7", True), ("14749-6", True), ("15074-8", True), ("41653-7", True),
    ("2160-0", True), ("14682-9", True), ("3094-0", True), ("17861-6", True),
    ("1975-2", True), ("14631-6", True), ("718-7", True), ("6690-2", True),
    ("2823-4", False), ("718-8", False),              # wrong check digit
    ("2823", False), ("K", False), ("28233", False), ("2823-33", False), ("", False),
])
def test_loinc_shape_and_check_digit(code: str, expected: bool) -> None:
    assert is_loinc(code) is expected


@pytest.mark.parametrize(("system", "expected"), [
    ("LN", True), ("ln", True), (" LOINC ", True), ("L", False), ("99LIS", False), (None, False),
])
def test_loinc_systems(system: str | None, expected: bool) -> None:
    assert is_loinc_system(system) is expected


@pytest.mark.parametrize(("code", "expected"), [
    ("I10.x00", "I10.x00"), ("E11.900", "E11.900"), ("J18.900", "J18.900"),
    ("I10.x00x002", "I10.x00x002"), ("I20.800x007", "I20.800x007"),
    ("I10", "I10"), ("E11.9", "E11.9"), ("i10.X00", "I10.x00"), (" E11.900 ", "E11.900"),
    ("I10.x", None), ("I10.x00x02", None), ("10.x00", None), ("II0", None),
    ("I10.00", None), ("00004", None), ("", None), ("I1", None),
])
def test_icd10_shape(code: str, expected: str | None) -> None:
    assert icd10_code(code) == expected


@pytest.mark.parametrize(("system", "expected"), [
    ("I10", True), ("ICD10", True), ("ICD-10", True), ("icd-10", True), ("ICD 10", True),
    ("ICD-10-CN", True), ("GB/T 14396", True), ("GB/T 14396-2016", True),
    ("ICD-10 国家临床版 2.0", True), ("国家临床版2.0", True), ("2.16.156.10011.2.3.3.11", True),
    ("ICD-10-CM", False), ("ICD-9", False), ("ICD-10 医保版 2.0", False), ("L", False),
    (None, False),
])
def test_icd10_systems(system: str | None, expected: bool) -> None:
    assert is_icd10_system(system) is expected
