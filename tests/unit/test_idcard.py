"""GB 11643 citizen ID numbers: vectors from docs/reference (cn-standards.md section 1)."""

from __future__ import annotations

from datetime import date

import pytest

from producers.idcard import check_character, validate_id_card


@pytest.mark.parametrize(
    "number",
    [
        "11010519491231002X",
        "34052419800101001X",
        "42010619630312203X",
        "421281199507100051",
        "410326199507103197",
        "810000199408230021",  # Hong Kong residence permit
        "830000199201300022",  # Taiwan residence permit
    ],
)
def test_reference_vectors_are_valid(number: str) -> None:
    check = validate_id_card(number)
    assert check.valid and check.well_formed and check.valid_checksum
    assert check.number == number and not check.upgraded


def test_fields_of_a_valid_number() -> None:
    check = validate_id_card("11010519491231002X")
    assert check.birth_date == date(1949, 12, 31)
    assert check.sex == "F"  # 17th digit 2 is even
    assert validate_id_card("421281199507100051").sex == "M"  # 5 is odd


@pytest.mark.parametrize(
    ("number", "normalised"),
    [
        ("110105491231002", "11010519491231002X"),
        (" 11010519491231002x ", "11010519491231002X"),
        ("１１０１０５１９４９１２３１００２Ｘ", "11010519491231002X"),  # full-width
        ("110105 19491231 002X", "11010519491231002X"),
    ],
)
def test_normalisation(number: str, normalised: str) -> None:
    check = validate_id_card(number)
    assert check.number == normalised and check.valid


def test_fifteen_digit_upgrade() -> None:
    check = validate_id_card("110105491231002")
    assert check.upgraded and check.birth_date == date(1949, 12, 31) and check.sex == "F"


@pytest.mark.parametrize(
    "number",
    [
        "110105194912310021",  # should end in X
        "420106201101011919",  # sample from a public CDA example: should end in 7
        "120109197706015516",  # should end in 4
    ],
)
def test_bad_check_character_is_flagged_not_raised(number: str) -> None:
    check = validate_id_card(number)
    assert check.well_formed and not check.valid_checksum and not check.valid
    assert check.number == number and check.birth_date is not None


@pytest.mark.parametrize(
    "value",
    [
        "",
        "1101051949123100",  # 16 characters
        "11010519491231002Y",
        "1101051949123100XX",
        "11010519491331002X",  # month 13
        "11010549123100X",  # 15 characters, not all digits
        "P000123",
    ],
)
def test_malformed(value: str) -> None:
    check = validate_id_card(value)
    assert not check.well_formed and not check.valid
    assert check.birth_date is None and check.sex is None


def test_check_character() -> None:
    assert check_character("11010519491231002") == "X"
    assert check_character("42010620110101191") == "7"
    with pytest.raises(ValueError, match="17 ASCII digits"):
        check_character("1234")
