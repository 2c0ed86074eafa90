"""Comparison levels on tables of cases, and the model that weighs them."""

from __future__ import annotations

import math
from datetime import date

import pytest

from streams.empi.address import parse_address
from streams.empi.compare import (
    COMPARISONS,
    compare_addresses,
    compare_birth_dates,
    compare_names,
    compare_phones,
    compare_unchecked_ids,
)
from streams.empi.model import DEFAULT_MODEL, estimate_m, estimate_u, probability
from streams.empi.names import parse_name
from streams.empi.person import person_from_event

NAME_LEVELS = COMPARISONS[0].levels


@pytest.mark.parametrize(("a", "b", "level"), [
    ("张三", "张三", "exact"),
    ("张三", "張三", "exact"),  # traditional
    ("张三", "章三", "pinyin"),  # homophone from the input method
    ("张三", "ZHANG SAN", "pinyin"),
    ("张三", "San Zhang", "swapped"),
    ("王小明", "王晓明", "pinyin"),
    ("王小明", "王大明", "close"),  # one character in a three-character name
    ("柴坤", "柴军", "other"),  # one character in a two-character name: brothers
    ("ZHANG SAN", "ZHANG SHAN", "close"),
    ("ZHANG SAN", "LI SI", "other"),
    ("张三", None, None),
])
def test_name_levels(a: str, b: str | None, level: str | None) -> None:
    found = compare_names(parse_name(a), parse_name(b))
    assert (NAME_LEVELS[found] if found is not None else None) == level


@pytest.mark.parametrize(("a", "b", "level"), [
    (date(1980, 1, 2), date(1980, 1, 2), 0),
    (date(1980, 1, 2), date(1980, 1, 3), 1),  # one digit
    (date(1980, 1, 2), date(1908, 1, 2), 1),  # two adjacent digits transposed
    (date(1980, 1, 2), date(1980, 2, 1), 1),  # day and month swapped
    (date(1980, 1, 2), date(1980, 7, 19), 2),  # same year
    (date(1980, 1, 2), date(2021, 1, 2), 3),
    (date(1980, 1, 2), None, None),
])
def test_birth_date_levels(a: date, b: date | None, level: int | None) -> None:
    assert compare_birth_dates(a, b) == level


@pytest.mark.parametrize(("a", "b", "level"), [
    ("13800138000", "13800138000", 0), ("13800138000", "13800138001", 1),
    ("13800138000", "15900138000", 1),  # the same last eight digits
    ("13800138000", "15912345678", 2), (None, "13800138000", None),
])
def test_phone_levels(a: str | None, b: str | None, level: int | None) -> None:
    assert compare_phones(a, b) == level


@pytest.mark.parametrize(("a", "b", "level"), [
    ("北京市朝阳区建国路88号", "朝阳区建国路88号", 0),  # province left out
    ("北京市朝阳区建国路88号", "北京市朝阳区建国路88号院", 0),  # nearly the same
    ("北京市朝阳区建国路88号", "北京市朝阳区建国路89号", 1),  # the neighbours
    ("北京市朝阳区建国路88号", "北京市朝阳区望京街道阜通东大街6号", 1),
    ("北京市朝阳区建国路88号", "北京市海淀区中关村大街1号", 2),
    ("北京市朝阳区建国路88号", "上海市朝阳区建国路88号", 3),  # another city
])
def test_address_levels(a: str, b: str, level: int) -> None:
    assert compare_addresses(parse_address(a), parse_address(b)) == level


def test_id_cards_are_compared_only_when_one_is_not_valid() -> None:
    def person(number: str) -> object:
        return person_from_event("F", {"source_patient_id": number, "id_card_number": number})

    valid, typo = person("11010519491231002X"), person("11010519491231012X")
    assert compare_unchecked_ids(valid, valid) is None  # two valid ones: the rules decide
    assert compare_unchecked_ids(valid, typo) == 1
    assert compare_unchecked_ids(typo, typo) == 0


def test_model_weights_agreement_up_and_disagreement_down() -> None:
    agree = (0, 0, 0, 0, 0, None, None)
    disagree = (4, 3, 1, 2, 3, None, None)
    assert DEFAULT_MODEL.weight(agree) > 0 > DEFAULT_MODEL.weight(disagree)
    assert DEFAULT_MODEL.weight((None,) * len(COMPARISONS)) == DEFAULT_MODEL.prior_weight
    assert math.isclose(probability(0.0), 0.5) and probability(100.0) == 1.0


def test_a_common_name_says_less_than_a_rare_one() -> None:
    vector = (0, 0, 0, None, None, None, None)
    rare = DEFAULT_MODEL.weight(vector, {"name": 1e-6})
    common = DEFAULT_MODEL.weight(vector, {"name": 0.01})
    assert math.isclose(rare, DEFAULT_MODEL.weight(vector)) and rare > common


def test_overrides_name_their_comparison_and_level() -> None:
    model = DEFAULT_MODEL.with_overrides({"phone": {"exact": {"m": 0.5, "u": 0.5}}})
    assert model.describe()["phone"]["exact"]["weight"] == 0.0
    with pytest.raises(ValueError, match="no comparison named"):
        DEFAULT_MODEL.with_overrides({"shoe_size": {}})
    with pytest.raises(ValueError, match="has no level"):
        DEFAULT_MODEL.with_overrides({"phone": {"nearly": {"m": 0.5}}})


def test_em_recovers_m_from_a_mixture() -> None:
    """Matches agree on names 90% of the time, non-matches 1%; EM finds m near 0.9."""
    matches = [(0, 0, 0, None, None, None, None)] * 90 + [(4, 0, 0, None, None, None, None)] * 10
    others = [(4, 3, 1, None, None, None, None)] * 990 + [(0, 3, 0, None, None, None, None)] * 10
    model = estimate_u(others)
    fitted = estimate_m(matches + others, model)
    assert abs(fitted.m[0][0] - 0.9) < 0.05
    assert abs(fitted.prior - 100 / 1100) < 0.02
