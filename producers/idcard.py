"""GB 11643 citizen ID numbers (公民身份号码): normalise and check, never reject.

18 characters: address code (6), birth date YYYYMMDD (8), sequence (3, the
last digit odd for men and even for women), and an ISO 7064 MOD 11-2 check
character (``X`` stands for 10). The 1989 format has 15 digits (birth date
YYMMDD, no check character); it is upgraded by inserting ``19`` before the
year and appending the check character.

A wrong check character is a data-quality finding, not an error: public
sample data and real registries both contain such numbers, so callers record a
warning and keep the event.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import date

__all__ = ["IdCardCheck", "check_character", "checked_id_card", "validate_id_card"]

#: Weights of positions 1..17 (2^(18-i) mod 11).
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
#: Check character by the weighted sum mod 11.
_CHECK = "10X98765432"
_DIGITS = frozenset("0123456789")


@dataclass(frozen=True, slots=True)
class IdCardCheck:
    """What a number says about itself.

    ``number`` is the normalised 18-character form when the input is well
    formed (15-digit numbers upgraded, ``x`` upper-cased, full-width digits and
    spaces removed), else the cleaned input.
    """

    number: str
    well_formed: bool
    valid_checksum: bool
    birth_date: date | None
    sex: str | None  # "M" or "F", from the sequence code
    upgraded: bool = False

    @property
    def valid(self) -> bool:
        """Well formed and the check character matches."""
        return self.well_formed and self.valid_checksum


def check_character(first17: str) -> str:
    """The MOD 11-2 check character for 17 ASCII digits."""
    if len(first17) != 17 or not _DIGITS.issuperset(first17):
        raise ValueError("expected 17 ASCII digits")
    total = sum(int(c) * w for c, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK[total % 11]


def _birth_date(digits: str) -> date | None:
    try:
        return date(int(digits[0:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        return None


def validate_id_card(value: str) -> IdCardCheck:
    """Normalise and check a GB 11643 number (18 characters, or the 15-digit form)."""
    cleaned = "".join(unicodedata.normalize("NFKC", value).split()).upper()
    malformed = IdCardCheck(cleaned, False, False, None, None)
    upgraded = len(cleaned) == 15
    if upgraded:
        if not _DIGITS.issuperset(cleaned):
            return malformed
        first17 = cleaned[:6] + "19" + cleaned[6:]
        number = first17 + check_character(first17)
    elif len(cleaned) == 18 and _DIGITS.issuperset(cleaned[:17]) and (
        cleaned[17] in _DIGITS or cleaned[17] == "X"
    ):
        number = cleaned
    else:
        return malformed
    born = _birth_date(number[6:14])
    if born is None:
        return malformed
    return IdCardCheck(
        number=number,
        well_formed=True,
        valid_checksum=check_character(number[:17]) == number[17],
        birth_date=born,
        sex="M" if int(number[16]) % 2 else "F",
        upgraded=upgraded,
    )


def checked_id_card(value: str, where: str, warnings: list[str]) -> str:
    """The normalised number; a quality warning naming ``where`` (never the value) is
    appended when it is malformed, has a wrong check character, or was upgraded."""
    check = validate_id_card(value)
    if not check.well_formed:
        warnings.append(f"{where}: ID card number is not a valid GB 11643 number")
    elif not check.valid_checksum:
        warnings.append(f"{where}: ID card check character does not match")
    elif check.upgraded:
        warnings.append(f"{where}: 15-digit ID card number upgraded to 18 digits")
    return check.number
