"""Comparison levels on tables of cases, and the model that weighs them."""

from __future__ import annotations

import math
from datetime import date

import pytest

from streams.empi.address import parse_address
from streams.empi.compare import (
    COMPARISONS,
    Vector,
    compare,
    compare_addresses,
    compare_birth_dates,
    compare_identifiers,
    compare_name_parts,
    compare_names,
    compare_phones,
    compare_unchecked_ids,
)
from streams.empi.model import (
    DEFAULT_MODEL,
    discount_matches,
    estimate_m,
    estimate_u,
    probability,
)
from streams.empi.names import parse_name
from streams.empi.person import Person, person_from_event

NAME_LEVELS = COMPARISONS[0].levels
NAME_PART_LEVELS = next(c.levels for c in COMPARISONS if c.name == "name_part")
IDENTIFIER_LEVELS = next(c.levels for c in COMPARISONS if c.name == "identifier")


def vector(*levels: int | None) -> Vector:
    """The first comparisons' levels as given, the rest not comparable."""
    return (*levels, *(None,) * (len(COMPARISONS) - len(levels)))


@pytest.mark.parametrize(("a", "b", "level"), [
    ("张三", "张三", "exact"),
    ("张三", "張三", "exact"),  # traditional
    ("张三", "章三", "pinyin"),  # homophone from the input method
    ("张三", "ZHANG SAN", "pinyin"),
    ("张三", "San Zhang", "swapped"),
    ("王小明", "王晓明", "pinyin"),
    ("王小明", "王大明", "close"),  # one character in a three-character name
    ("柴坤", "柴军", "other"),  # one character in a two-character name: brothers
    ("叶淑", "叶淑兰", "close"),  # the last character left out, in either order
    ("叶淑兰", "叶淑", "close"),
    ("ZHANG SAN", "ZHANG SHAN", "close"),
    ("ZHANG SAN", "LI SI", "other"),
    ("张三", None, None),
    ("michaela neumann", "michaela neumann", "exact"),
    ("mitchell white", "mitchel white", "close"),  # a letter dropped
    ("danny stephenson", "stephenson danny", "swapped"),
    ("blake de courcey", "blake decourcey", "pinyin"),  # the same letters, spaced otherwise
    ("mitchell white", "white", "other"),  # the given name left out: see name_part
])
def test_name_levels(a: str, b: str | None, level: str | None) -> None:
    found = compare_names(parse_name(a), parse_name(b))
    assert (NAME_LEVELS[found] if found is not None else None) == level


@pytest.mark.parametrize(("a", "b", "level"), [
    ("mitchell white", "white", "within"),  # the given name left out
    ("ann smith", "mary ann smith", "within"),  # a middle name added
    ("isabella jessup", "isabella ryan", "one_same"),  # a surname changed at marriage
    ("jack menzies", "elton menzies", "one_same"),
    ("makenzi weller", "mackenzie elphick", "one_close"),  # a word misspelt, one replaced
    ("liam kayvas", "ilam tschitrpig", "none"),  # a close word must share its initial
    ("jo kay", "jon lee", "none"),  # too short to be close
    ("jack white", "elton brown", "none"),
    ("mitchell white", "mitchel white", None),  # the names are close: nothing to refine
    ("张三", "张四", None),  # hanzi: siblings share a surname, not the person
    ("张三", "LI SI", None),
    ("jack white", None, None),
])
def test_name_part_levels(a: str, b: str | None, level: str | None) -> None:
    found = compare_name_parts(parse_name(a), parse_name(b))
    assert (NAME_PART_LEVELS[found] if found is not None else None) == level


@pytest.mark.parametrize(("a", "b", "level"), [
    (date(1980, 1, 2), date(1980, 1, 2), 0),
    (date(1980, 1, 2), date(1980, 1, 3), 1),  # one digit
    (date(1980, 1, 2), date(1908, 1, 2), 1),  # two adjacent digits transposed
    (date(1980, 1, 2), date(1980, 2, 1), 1),  # day and month swapped
    (date(1980, 1, 2), date(1980, 7, 19), 2),  # same year
    (date(1980, 1, 2), date(2021, 1, 2), 3),
    (date(1980, 12, 3), date(1980, 10, 23), 1),  # 19801203 -> 19801023: month and day
    (date(1980, 1, 2), date(1991, 3, 4), 3),  # year, month and day all differ
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
    # Latin-script lines: by the words they share
    ("8 stanley street, miami, winston hills nsw 4223",
     "8 stanley street, miami, winston hills nsw 4223", 0),
    ("8 stanley street, miami, winston hills nsw 4223",
     "8 stanley setreet, miami, winston hills nsw 4223", 0),  # a typo
    ("8 stanley street, miami, winston hills nsw 4223",
     "8 stanley street, winston hills nsw 4223", 0),  # the second line left out
    ("8 stanley street, miami, winston hills nsw 4223",
     "10 stanley street, miami, winston hills nsw 4223", 1),  # the neighbours
    ("8 stanley street, miami, winston hills nsw 4223",
     "8 stanley st, miami, winston hils nsw 4232", 1),
    ("8 stanley street, miami, winston hills nsw 4223",
     "12 pinkerton circuit, bega flats, richlands vic 4560", 3),
    ("8 stanley street, miami, winston hills nsw 4223", "nsw 4223", 3),  # too little to say
])
def test_address_levels(a: str, b: str, level: int) -> None:
    assert compare_addresses(parse_address(a), parse_address(b)) == level


def test_a_hanzi_address_and_a_latin_one_are_not_comparable() -> None:
    assert compare_addresses(parse_address("北京市朝阳区建国路88号"),
                             parse_address("88 Jianguo Road, Chaoyang, Beijing")) is None


def _with_identifiers(*identifiers: tuple[str, str]) -> Person:
    return person_from_event("F", {"source_patient_id": "1", "identifiers": [
        {"authority": authority, "value": value} for authority, value in identifiers]})


@pytest.mark.parametrize(("a", "b", "level"), [
    ([("SSN", "5304218")], [("SSN", "5304218")], "shared"),
    ([("SSN", "5304218")], [("SSN", "5304281")], "one_apart"),  # two digits swapped
    ([("SSN", "5304218")], [("SSN", "530421")], "one_apart"),  # a digit dropped
    ([("SSN", "5304218")], [("SSN", "1551941")], "conflict"),
    ([("SSN", "5304218"), ("YBJ", "YB1")], [("YBJ", "YB2"), ("SSN", "5304219")], "one_apart"),
    ([("SSN", "5304218")], [("YBJ", "5304218")], None),  # other authorities: no evidence
    ([("SSN", "5304218")], [], None),
])
def test_identifier_levels(a: list[tuple[str, str]], b: list[tuple[str, str]],
                           level: str | None) -> None:
    found = compare_identifiers(_with_identifiers(*a), _with_identifiers(*b))
    assert (IDENTIFIER_LEVELS[found] if found is not None else None) == level


@pytest.mark.parametrize(("a", "b"), [
    ({"name": "张三", "birth_date": date(1949, 12, 31), "sex": "1", "phone": "13800138000",
      "address": "北京市朝阳区建国路88号", "id_card_number": "11010519491231002X"},
     {"name": "ZHANG SAN", "birth_date": date(1949, 12, 13), "sex": "M", "phone": "13800138001",
      "address": "朝阳区建国路88号", "id_card_number": "11010519491231012X"}),
    ({"name": "mitchell white", "birth_date": date(1962, 2, 16),
      "address": "72 lambrigg street, kelgoola, broadbeach waters vic 3150",
      "identifiers": [{"authority": "SSN", "value": "9731855"}]},
     {"name": "white", "address": "72 lambrigg street, kelgoola, broadbeach waters vic 3159",
      "identifiers": [{"authority": "SSN", "value": "9731855"}]}),
    ({"name": "jack white"}, {}),
])
def test_compare_is_each_comparison_in_order(a: dict[str, object], b: dict[str, object]) -> None:
    left = person_from_event("A", {"source_patient_id": "1", **a})
    right = person_from_event("B", {"source_patient_id": "2", **b})
    assert compare(left, right) == tuple(c.function(left, right) for c in COMPARISONS)


def test_id_cards_are_compared_only_when_one_is_not_valid() -> None:
    def person(number: str) -> object:
        return person_from_event("F", {"source_patient_id": number, "id_card_number": number})

    valid, typo = person("11010519491231002X"), person("11010519491231012X")
    assert compare_unchecked_ids(valid, valid) is None  # two valid ones: the rules decide
    assert compare_unchecked_ids(valid, typo) == 1
    assert compare_unchecked_ids(typo, typo) == 0


def test_model_weights_agreement_up_and_disagreement_down() -> None:
    agree = vector(0, 0, 0, 0, 0, None, None)
    disagree = vector(4, 3, 1, 2, 3, None, None)
    assert DEFAULT_MODEL.weight(agree) > 0 > DEFAULT_MODEL.weight(disagree)
    assert DEFAULT_MODEL.weight((None,) * len(COMPARISONS)) == DEFAULT_MODEL.prior_weight
    assert math.isclose(probability(0.0), 0.5) and probability(100.0) == 1.0


def test_a_common_name_says_less_than_a_rare_one() -> None:
    levels = vector(0, 0, 0, None, None, None, None)
    rare = DEFAULT_MODEL.weight(levels, {"name": 1e-6})
    common = DEFAULT_MODEL.weight(levels, {"name": 0.01})
    assert math.isclose(rare, DEFAULT_MODEL.weight(levels)) and rare > common


def test_overrides_name_their_comparison_and_level() -> None:
    model = DEFAULT_MODEL.with_overrides({"phone": {"exact": {"m": 0.5, "u": 0.5}}})
    assert model.describe()["phone"]["exact"]["weight"] == 0.0
    with pytest.raises(ValueError, match="no comparison named"):
        DEFAULT_MODEL.with_overrides({"shoe_size": {}})
    with pytest.raises(ValueError, match="has no level"):
        DEFAULT_MODEL.with_overrides({"phone": {"nearly": {"m": 0.5}}})


def test_em_recovers_m_from_a_mixture() -> None:
    """Matches agree on names 90% of the time, non-matches 1%; EM finds m near 0.9."""
    matches = [vector(0, 0, 0)] * 90 + [vector(4, 0, 0)] * 10
    others = [vector(4, 3, 1)] * 990 + [vector(0, 3, 0)] * 10
    model = estimate_u(others)
    fitted = estimate_m(matches + others, model)
    assert abs(fitted.m[0][0] - 0.9) < 0.05
    assert abs(fitted.prior - 100 / 1100) < 0.02


def test_the_matches_among_random_pairs_are_weighed_out_of_u() -> None:
    """One random pair in 2,000 is a match; its agreement is not a coincidence."""
    coincidences = [vector(0, 3, 1, None, None, None, 2)] * 2
    others = [vector(4, 3, 1, None, None, None, 2)] * 19_948 + coincidences
    matches = [vector(0, 0, 0, None, None, None, 0)] * 10
    raw = estimate_u(others + matches)
    fitted = discount_matches(others + matches, raw)
    shared = [c.name for c in COMPARISONS].index("identifier")
    assert raw.u[shared][0] > 10 * fitted.u[shared][0]  # ten matches made it ~5e-4
    assert fitted.u[shared][0] < 1e-4
    assert math.isclose(fitted.u[0][0], 3 / 19_965, rel_tol=0.3)  # the two coincidences stay
    assert fitted.m == raw.m and fitted.prior == raw.prior
