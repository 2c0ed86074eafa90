"""PID to hutong.PatientIdentity: identifiers, names, addresses, quality warnings."""

from __future__ import annotations

from datetime import date

import pytest

from hutong.errors import ValidationError
from producers.hl7v2.message import Message, Segment
from producers.hl7v2.patient import (
    PATIENT_KEYS,
    PatientProfile,
    is_hanzi,
    map_patient,
)

MSH = "MSH|^~\\&|HIS|RMYY|HUTONG|QYPT|20240115093000||ORU^R01|M1|P|2.4"


def pid(text: str) -> Segment:
    segment = Message.parse(f"{MSH}\r{text}").segment("PID")
    assert segment is not None
    return segment


def test_chinese_hospital_pid() -> None:
    patient, warnings = map_patient(pid(
        "PID|1||P000123^^^RMYY^PI~11010519491231002X^^^GA^SFZH~JK0099^^^WJW^JKK||张三||19491231"
        "|M|||建国路1号^^北京市^北京市^^^^^朝阳区||13800000000"))
    assert tuple(patient) == PATIENT_KEYS
    assert patient == {
        "source_patient_id": "P000123",
        "identifiers": [
            {"value": "P000123", "type": "PI", "authority": "RMYY"},
            {"value": "11010519491231002X", "type": "SFZH", "authority": "GA"},
            {"value": "JK0099", "type": "JKK", "authority": "WJW"},
        ],
        "id_card_number": "11010519491231002X",
        "health_card_number": "JK0099",
        "name": "张三",
        "sex": "M",
        "birth_date": date(1949, 12, 31),
        "phone": "13800000000",
        "address": "北京市朝阳区建国路1号",
    }
    assert warnings == []


@pytest.mark.parametrize(
    ("xpn", "name"),
    [
        ("张三", "张三"),  # the full name in XPN.1
        ("张^三", "张三"),  # family and given: no space between hanzi
        ("欧阳^修文", "欧阳修文"),
        ("张三^三", "张三"),  # full name in XPN.1, given name repeated in XPN.2
        ("Smith^John", "Smith John"),
        ("Zhang^San", "Zhang San"),
        ("^San", "San"),
        ("阿依古丽·买买提", "阿依古丽·买买提"),
        ("张^三~ZHANG^SAN", "张三"),  # first repetition only
        ("", None),
    ],
)
def test_name(xpn: str, name: str | None) -> None:
    patient, _ = map_patient(pid(f"PID|1||P1||{xpn}"))
    assert patient["name"] == name


@pytest.mark.parametrize(
    ("xad", "address"),
    [
        ("建国路1号^^北京市^北京市^^^^^朝阳区", "北京市朝阳区建国路1号"),
        ("建国路1号^^北京市^北京市^^^^^110105", "北京市建国路1号"),  # a division code, skipped
        ("北京市朝阳区建国路1号^^北京市^北京市", "北京市朝阳区建国路1号"),  # already in street
        ("人民路8号^^杭州市^浙江省^^^^^西湖区", "浙江省杭州市西湖区人民路8号"),
        ("^^杭州市^浙江省", "浙江省杭州市"),
        ("1 Main St^^Springfield^IL", "IL, Springfield, 1 Main St"),
        ("", None),
    ],
)
def test_address(xad: str, address: str | None) -> None:
    patient, _ = map_patient(pid(f"PID|1||P1||||||||{xad}"))
    assert patient["address"] == address


@pytest.mark.parametrize(
    ("xtn", "phone"),
    [
        ("13800000000", "13800000000"),
        ("^PRN^PH^^^010^12345678", "01012345678"),  # area + local number
        ("^PRN^CP^^^^^^^^^13900000000", "13900000000"),  # v2.5 XTN.12
        ("~13800000000", "13800000000"),
        ("", None),
    ],
)
def test_phone(xtn: str, phone: str | None) -> None:
    patient, _ = map_patient(pid(f"PID|1||P1||||||||||{xtn}"))
    assert patient["phone"] == phone


def test_id_card_from_pid19_when_no_typed_identifier() -> None:
    text = "PID|1||P1^^^RMYY^PI||李四||19800101|F|||||||||||110105491231002"
    patient, warnings = map_patient(pid(text))
    assert patient["id_card_number"] == "11010519491231002X"
    assert warnings == ["PID[1]-19: 15-digit ID card number upgraded to 18 digits"]


@pytest.mark.parametrize(
    ("cx", "warning"),
    [
        ("110105194912310021^^^GA^SFZH", "PID[1]-3[2]: ID card check character does not match"),
        ("11010519491231002X^^^GA^NI", None),
        ("11010519491231002X^^^GA^ID", None),
        ("ABC^^^GA^SFZH", "PID[1]-3[2]: ID card number is not a valid GB 11643 number"),
    ],
)
def test_id_card_warnings_name_the_field_not_the_number(cx: str, warning: str | None) -> None:
    patient, warnings = map_patient(pid(f"PID|1||P1^^^RMYY^PI~{cx}"))
    assert warnings == ([warning] if warning else [])
    assert patient["id_card_number"] is not None
    for text in warnings:
        assert patient["id_card_number"] not in text


def test_profile_overrides_identifier_types() -> None:
    segment = pid("PID|1||P1^^^RMYY^PI~11010519491231002X^^^GA^CARD~K1^^^X^EHC")
    default, _ = map_patient(segment)
    assert (default["id_card_number"], default["health_card_number"]) == (None, None)
    custom, _ = map_patient(segment, PatientProfile(frozenset({"CARD"}), frozenset({"EHC"})))
    assert (custom["id_card_number"], custom["health_card_number"]) == ("11010519491231002X", "K1")


def test_source_patient_id_falls_back_to_pid2() -> None:
    patient, _ = map_patient(pid("PID|1|EXT9||张三"))
    assert patient["source_patient_id"] == "EXT9" and patient["identifiers"] == []


def test_missing_patient_id() -> None:
    with pytest.raises(ValidationError) as caught:
        map_patient(pid("PID|1|||张三"))
    assert (caught.value.code, caught.value.location) == ("101", "PID[1]-3")


@pytest.mark.parametrize(
    ("birth", "expected", "warning"),
    [
        ("1980-01-01", None, "PID[1]-7: birth date is not a valid HL7 date"),
        ("1980", date(1980, 1, 1), "PID[1]-7: birth date is not precise to the day"),
        ("19800101120000", date(1980, 1, 1), None),
    ],
)
def test_birth_date_problems_are_warnings(birth: str, expected: date | None,
                                          warning: str | None) -> None:
    patient, warnings = map_patient(pid(f"PID|1||P1||张三||{birth}|F"))
    assert patient["birth_date"] == expected
    assert warnings == ([warning] if warning else [])


def test_is_hanzi() -> None:
    assert is_hanzi("张") and is_hanzi("a𠀀") and not is_hanzi("Zhang") and not is_hanzi("")
