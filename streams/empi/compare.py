"""Comparators: how far two records agree, field by field, as discrete levels.

Each comparator returns the index of the first level that holds, best first,
or None when either record lacks the field (a missing value is no evidence
either way). The Fellegi-Sunter model (:mod:`streams.empi.model`) gives each
level of each comparison its own weight.

=============  ===========================================================
comparison     levels, best first
=============  ===========================================================
name           exact (same hanzi, or same Latin spelling); same pinyin
               (homophone 张/章, traditional 張, hanzi vs Latin); swapped
               order (San Zhang); close (one hanzi different in a name
               of three or more; a Latin spelling with Jaro-Winkler >= 0.92
               on the pinyin); other
birth_date     exact; a typo (one digit, two adjacent digits transposed,
               day and month swapped); same year; other
sex            same; other
phone          exact; close (one digit wrong or the same last 8 digits);
               other
address        same street (the rest of the line nearly equal, district
               not contradicting); same district; same city; other
id_card        exact (an unchecked number equal to the other's); one
               character apart (a typo); other
identifier     shares an ``authority:value``; same authority, other value
=============  ===========================================================

Valid ID and health card numbers are not compared here: the linker's
deterministic rules handle them before any scoring (see
:mod:`streams.empi.linker`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from rapidfuzz.distance import DamerauLevenshtein, JaroWinkler, Levenshtein

from streams.empi.address import Address
from streams.empi.names import Name
from streams.empi.person import Person

__all__ = ["COMPARISONS", "Comparison", "Vector", "compare"]

#: One level per comparison, or None for "not comparable".
Vector = tuple[int | None, ...]

_CLOSE_NAME = 0.92
_CLOSE_ADDRESS = 0.85


@dataclass(frozen=True, slots=True)
class Comparison:
    """A named comparator and the names of its levels, best first."""

    name: str
    levels: tuple[str, ...]
    function: Callable[[Person, Person], int | None]


def compare_names(a: Name | None, b: Name | None) -> int | None:
    if a is None or b is None:
        return None
    if a.text == b.text:
        return 0
    if a.pinyin == b.pinyin:
        return 1
    if a.pinyin == b.swapped or a.swapped == b.pinyin:
        return 2
    if a.hanzi and b.hanzi:
        # Two hanzi names one character apart are a typo only in a long name: 柴坤 and
        # 柴军 are brothers, 王小明 and 王晓明 may be one boy (and 小/晓 share a sound).
        close = len(a.text) >= 3 and Levenshtein.distance(a.text, b.text) <= 1
    else:  # a Latin spelling: a letter off, in either order
        close = (JaroWinkler.normalized_similarity(a.pinyin, b.pinyin) >= _CLOSE_NAME
                 or JaroWinkler.normalized_similarity(a.pinyin, b.swapped) >= _CLOSE_NAME
                 ) and a.surname[:1] == b.surname[:1]
    return 3 if close else 4


def compare_birth_dates(a: date | None, b: date | None) -> int | None:
    if a is None or b is None:
        return None
    if a == b:
        return 0
    left, right = a.strftime("%Y%m%d"), b.strftime("%Y%m%d")
    if DamerauLevenshtein.distance(left, right) <= 1 or (a.year, a.month, a.day) == (
            b.year, b.day, b.month):
        return 1
    if a.year == b.year:
        return 2
    return 3


def compare_sex(a: str | None, b: str | None) -> int | None:
    if a is None or b is None:
        return None
    return 0 if a == b else 1


def compare_phones(a: str | None, b: str | None) -> int | None:
    if a is None or b is None:
        return None
    if a == b:
        return 0
    if (len(a) == len(b) and Levenshtein.distance(a, b) <= 1) or (
            len(a) >= 8 and len(b) >= 8 and a[-8:] == b[-8:]):
        return 1
    return 2


def _disagree(x: str | None, y: str | None) -> bool:
    return x is not None and y is not None and x != y


def compare_addresses(a: Address | None, b: Address | None) -> int | None:
    if a is None or b is None:
        return None
    if _disagree(a.province, b.province) or _disagree(a.city, b.city):
        return 3
    if _disagree(a.district, b.district):
        return 2 if a.city is not None and a.city == b.city else 3
    if a.rest and b.rest and Levenshtein.normalized_similarity(a.rest, b.rest) >= _CLOSE_ADDRESS:
        return 0
    if a.district is not None and a.district == b.district:
        return 1
    if a.city is not None and a.city == b.city:
        return 2
    return 3


def compare_unchecked_ids(a: Person, b: Person) -> int | None:
    """ID-card numbers where at least one is not valid (two valid ones are the rules' job)."""
    left = a.id_card or a.id_card_unchecked
    right = b.id_card or b.id_card_unchecked
    if left is None or right is None or (a.id_card and b.id_card):
        return None
    if left == right:
        return 0
    return 1 if DamerauLevenshtein.distance(left, right) <= 1 else 2


def compare_identifiers(a: Person, b: Person) -> int | None:
    if not a.identifiers or not b.identifiers:
        return None
    if a.identifiers & b.identifiers:
        return 0
    authorities = {i.split(":", 1)[0] for i in a.identifiers}
    if authorities & {i.split(":", 1)[0] for i in b.identifiers}:
        return 1
    return None


COMPARISONS: tuple[Comparison, ...] = (
    Comparison("name", ("exact", "pinyin", "swapped", "close", "other"),
               lambda a, b: compare_names(a.name, b.name)),
    Comparison("birth_date", ("exact", "typo", "same_year", "other"),
               lambda a, b: compare_birth_dates(a.birth_date, b.birth_date)),
    Comparison("sex", ("same", "other"), lambda a, b: compare_sex(a.sex, b.sex)),
    Comparison("phone", ("exact", "close", "other"),
               lambda a, b: compare_phones(a.phone, b.phone)),
    Comparison("address", ("street", "district", "city", "other"),
               lambda a, b: compare_addresses(a.address, b.address)),
    Comparison("id_card", ("exact", "one_apart", "other"), compare_unchecked_ids),
    Comparison("identifier", ("shared", "conflict"), compare_identifiers),
)


def compare(a: Person, b: Person) -> Vector:
    """The comparison vector of two records, in :data:`COMPARISONS` order."""
    return tuple(c.function(a, b) for c in COMPARISONS)
