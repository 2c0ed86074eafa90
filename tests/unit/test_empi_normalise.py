"""Names, addresses and whole records normalised for the EMPI matcher."""

from __future__ import annotations

from datetime import date

import pytest

from streams.empi.address import Address, parse_address
from streams.empi.blocking import blocking_keys
from streams.empi.names import parse_name
from streams.empi.person import normalise_phone, normalise_sex, person_from_event


@pytest.mark.parametrize(("raw", "text", "hanzi", "surname", "given"), [
    ("张三", "张三", True, "zhang", "san"),
    ("張三", "张三", True, "zhang", "san"),  # traditional to simplified
    ("张 三", "张三", True, "zhang", "san"),
    ("ＺＨＡＮＧ　ＳＡＮ", "zhang san", False, "zhang", "san"),  # full-width Latin
    ("ZHANG^SAN", "zhang san", False, "zhang", "san"),
    ("Lü Bu", "lu bu", False, "lu", "bu"),
    ("欧阳娜娜", "欧阳娜娜", True, "ouyang", "nana"),  # compound surname
    ("司马光", "司马光", True, "sima", "guang"),
    ("单雄信", "单雄信", True, "shan", "xiongxin"),  # surname reading, not dan
    ("曾国藩", "曾国藩", True, "zeng", "guofan"),
    ("阿依古丽·买买提", "阿依古丽买买提", True, "a", "yigulimaimaiti"),
])
def test_names(raw: str, text: str, hanzi: bool, surname: str, given: str) -> None:
    name = parse_name(raw)
    assert name is not None
    assert (name.text, name.hanzi, name.surname, name.given) == (text, hanzi, surname, given)


@pytest.mark.parametrize("raw", [None, "", "  ", "^^", "123"])
def test_nothing_to_compare_is_no_name(raw: str | None) -> None:
    assert parse_name(raw) is None


@pytest.mark.parametrize(("raw", "expected"), [
    ("北京市朝阳区建国路88号", Address("北京", "北京", "朝阳区", "建国路88号")),
    ("广东省广州市天河区天河路385号", Address("广东", "广州", "天河区", "天河路385号")),
    ("广州市 天河区 天河路３８５号", Address(None, "广州", "天河区", "天河路385号")),
    ("朝阳区建国路88号", Address(None, None, "朝阳区", "建国路88号")),
    ("新疆维吾尔自治区乌鲁木齐市天山区解放南路1号",
     Address("新疆", "乌鲁木齐", "天山区", "解放南路1号")),
    ("河北省石家庄市辛集市新垒头镇", Address("河北", "石家庄", "辛集市", "新垒头镇")),
    ("四川省阿坝藏族羌族自治州汶川县映秀镇",
     Address("四川", "阿坝藏族羌族自治州", "汶川县", "映秀镇")),
    ("廣東省廣州市天河區天河路385號", Address("广东", "广州", "天河区", "天河路385号")),
    # no hanzi: the words and numbers in order, nothing read into levels
    ("8 Stanley Street, Miami, Winston Hills NSW 4223",
     Address(None, None, None, "8 stanley street miami winston hills nsw 4223", latin=True)),
    ("905 Macquoid Pl., Broadbridge Manor", Address(
        None, None, None, "905 macquoid pl broadbridge manor", latin=True)),
    ("Ĺódź-Śródmieście, ul. Piotrkowska 1/3", Address(
        None, None, None, "lodz srodmiescie ul piotrkowska 1 3", latin=True)),  # ASCII-folded
    ("88 Jianguo Road, Chaoyang", Address(None, None, None, "88 jianguo road chaoyang",
                                          latin=True)),
])
def test_addresses(raw: str, expected: Address) -> None:
    assert parse_address(raw) == expected


@pytest.mark.parametrize("raw", [None, "", " , ", "--"])
def test_an_empty_line_is_no_address(raw: str | None) -> None:
    assert parse_address(raw) is None


@pytest.mark.parametrize(("code", "expected"), [
    ("M", "1"), ("1", "1"), ("男", "1"), ("f", "2"), ("2", "2"), ("女性", "2"),
    ("0", None), ("9", None), ("U", None), ("O", None), (None, None),
])
def test_sex_codes_of_gb_2261_and_hl7(code: str | None, expected: str | None) -> None:
    assert normalise_sex(code) == expected


@pytest.mark.parametrize(("raw", "expected"), [
    ("138 0013 8000", "13800138000"), ("+86 138-0013-8000", "13800138000"),
    ("008613800138000", "13800138000"), ("010-6512 3456", "01065123456"), ("123", None),
])
def test_phones(raw: str, expected: str | None) -> None:
    assert normalise_phone(raw) == expected


def test_a_record_keeps_a_valid_card_as_proof_and_a_bad_one_as_evidence() -> None:
    good = person_from_event("F1", {"source_patient_id": "1", "id_card_number": "110105491231002",
                                    "name": "张三", "birth_date": date(1949, 12, 31)})
    assert (good.id_card, good.id_card_unchecked) == ("11010519491231002X", None)  # upgraded
    bad = person_from_event("F1", {"source_patient_id": "2",
                                   "id_card_number": "110105194912310021"})
    assert (bad.id_card, bad.id_card_unchecked) == (None, "110105194912310021")


def test_a_card_fills_in_the_birth_date_and_sex_the_record_left_out() -> None:
    person = person_from_event("F1", {"source_patient_id": "1",
                                      "id_card_number": "11010519491231002X"})
    assert (person.birth_date, person.sex) == (date(1949, 12, 31), "2")
    said = person_from_event("F1", {"source_patient_id": "1", "sex": "1",
                                    "id_card_number": "11010519491231002X",
                                    "birth_date": date(1949, 12, 30)})  # a typo, kept
    assert (said.birth_date, said.sex, said.id_card) == (date(1949, 12, 30), "1",
                                                         "11010519491231002X")


def test_a_card_born_years_before_the_record_is_a_guardians_and_left_out() -> None:
    baby = person_from_event("F1", {"source_patient_id": "1", "name": "王小宝",
                                    "id_card_number": "11010519491231002X",
                                    "birth_date": date(2026, 11, 20)})
    assert (baby.id_card, baby.id_card_unchecked, baby.birth_date) == (
        None, None, date(2026, 11, 20))


def test_only_identifiers_of_other_authorities_are_evidence() -> None:
    person = person_from_event("F1", {"source_patient_id": "1", "identifiers": [
        {"value": "1", "type": "MR", "authority": "F1"},
        {"value": "M9", "type": "MR", "authority": "F2"},
        {"value": "YB123", "type": "SS", "authority": "YBJ"},
        {"value": "X", "type": "SS", "authority": None},
    ]})
    assert person.identifiers == frozenset({"F2:M9", "YBJ:YB123"})


def test_latin_records_have_keys_for_western_order_and_their_house() -> None:
    keys = blocking_keys(person_from_event("F1", {
        "source_patient_id": "1", "name": "Mitchell White", "birth_date": date(1962, 2, 16),
        "address": "72 Lambrigg Street, Kelgoola, Broadbeach Waters VIC 3150",
        "identifiers": [{"value": "9731855", "type": "SS", "authority": "SSN"}]}))
    assert {"ix:SSN:9731855", "lb:white:19620216", "ln:mitchellwhite", "la:72:lambrigg",
            "nb:mitchellwhite:19620216", "nb:whitemitchell:19620216"} <= set(keys)


def test_a_hanzi_record_gets_no_latin_keys() -> None:
    keys = blocking_keys(person_from_event("F1", {
        "source_patient_id": "1", "name": "张三", "birth_date": date(1949, 12, 31),
        "sex": "1", "address": "北京市朝阳区建国路88号"}))
    assert keys == ["nb:zhangsan:19491231", "sb:zhang:19491231:1", "gb:san:1949",
                    "nm:zhangsan:1231", "nr:zhangsan:19493112", "ad:朝阳区:建国路88号:1949"]
