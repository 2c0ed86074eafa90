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
               not contradicting); same district; same city; other.
               Two Latin-script lines (no levels to read) by the share of
               words they have in common (token-set similarity): >= 0.9
               with no number of one missing from the other (the house,
               not the neighbour's); >= 0.8; >= 0.7; other. A hanzi line
               and a Latin one are not comparable.
id_card        exact (an unchecked number equal to the other's); one
               character apart (a typo); other
identifier     shares an ``authority:value``; same authority, a value one
               edit apart (a typo); same authority, other value
name_part      only for two Latin names of level ``other``: every word of
               one is a word of the other (a given name left out, the
               words reordered); one word the same; one word close; none
=============  ===========================================================

``name_part`` refines the ``other`` level of ``name`` as a comparison of its
own, so that the name levels the linker's rules read keep their meaning: a
Latin-script record whose given name was left out, shortened to a nickname or
whose surname changed at marriage still shares a word, and that says more than
two names with nothing in common. Its m and u are estimated, like every other,
only over the pairs where it applies. Two hanzi names are left out on purpose:
Chinese siblings share the surname and often a generation character (柴坤 and
柴军 are brothers), so what they share is the family's, not the person's.

Valid ID and health card numbers are not compared here: the linker's
deterministic rules handle them before any scoring (see
:mod:`streams.empi.linker`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from rapidfuzz import fuzz
from rapidfuzz.distance import DamerauLevenshtein, JaroWinkler, Levenshtein

from streams.empi.address import Address
from streams.empi.names import Name
from streams.empi.person import Person

__all__ = ["COMPARISONS", "Comparison", "Vector", "compare", "compare_name_parts"]

#: One level per comparison, or None for "not comparable".
Vector = tuple[int | None, ...]

_CLOSE_NAME = 0.92
_CLOSE_ADDRESS = 0.85
#: Token-set similarity of two Latin address lines for the street, district and city levels.
_LATIN_ADDRESS = (0.9, 0.8, 0.7)
#: Fewer words than this and a line is too short for token sets (one word would match all).
_MIN_LATIN_WORDS = 3
_NAME_OTHER = 4
#: A name part shorter than this is an initial or a fragment: never "close".
_MIN_CLOSE_PART = 3


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
    ours, theirs = a.pinyin, b.pinyin
    if ours == theirs:
        return 1
    theirs_swapped = b.swapped
    if ours == theirs_swapped or a.swapped == theirs:
        return 2
    if a.hanzi and b.hanzi:
        # Two hanzi names one character apart are a typo only in a long name: 柴坤 and
        # 柴军 are brothers, 王小明 and 王晓明 may be one boy (and 小/晓 share a sound).
        close = max(len(a.text), len(b.text)) >= 3 and Levenshtein.distance(a.text,
                                                                            b.text) <= 1
    else:  # a Latin spelling: a letter off, in either order
        close = a.surname[:1] == b.surname[:1] and (
            JaroWinkler.normalized_similarity(ours, theirs) >= _CLOSE_NAME
            or JaroWinkler.normalized_similarity(ours, theirs_swapped) >= _CLOSE_NAME)
    return 3 if close else _NAME_OTHER


def _close_part(x: str, y: str) -> bool:
    """One word of a name misspelt: same initial, Jaro-Winkler >= 0.92, not an initial."""
    return (x[0] == y[0] and min(len(x), len(y)) >= _MIN_CLOSE_PART
            and JaroWinkler.normalized_similarity(x, y) >= _CLOSE_NAME)


def compare_name_parts(a: Name | None, b: Name | None, level: int | None = None
                       ) -> int | None:
    """What two Latin names of level ``other`` still share; None for any other pair.

    ``level`` is their :func:`compare_names` level when the caller has it already.
    """
    if a is None or b is None or a.hanzi or b.hanzi:
        return None
    if (compare_names(a, b) if level is None else level) != _NAME_OTHER:
        return None
    left, right = frozenset(a.text.split(" ")), frozenset(b.text.split(" "))
    if left <= right or right <= left:
        return 0
    if not left.isdisjoint(right):
        return 1
    for x in left:
        for y in right:
            if _close_part(x, y):
                return 2
    return 3


def compare_birth_dates(a: date | None, b: date | None) -> int | None:
    if a is None or b is None:
        return None
    if a == b:
        return 0
    if a.year != b.year and a.month != b.month and a.day != b.day:
        return 3  # one typo (a digit, two adjacent ones swapped) touches two parts at most
    left = f"{a.year:04d}{a.month:02d}{a.day:02d}"
    right = f"{b.year:04d}{b.month:02d}{b.day:02d}"
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


def compare_latin_addresses(a: str, b: str) -> int:
    """Two Latin-script address lines (words one space apart): the level by shared words.

    Token-set similarity forgives a line left out (no second line on one record)
    and words in another order; a house or postal number of the shorter line
    missing from the other keeps the pair off the top level (a neighbour).
    """
    if a == b:
        return 0
    lowest = _LATIN_ADDRESS[-1]
    if min(a.count(" "), b.count(" ")) + 1 >= _MIN_LATIN_WORDS:
        similarity = fuzz.token_set_ratio(a, b, score_cutoff=lowest * 100) / 100.0
    else:
        similarity = Levenshtein.normalized_similarity(a, b, score_cutoff=lowest)
    for level, threshold in enumerate(_LATIN_ADDRESS):
        if similarity >= threshold and (level > 0 or _numbers_agree(a, b)):
            return level
    return len(_LATIN_ADDRESS)


def _numbers_agree(a: str, b: str) -> bool:
    """The numbers of one line are all in the other (no house number contradicts)."""
    ours = {t for t in a.split(" ") if t.isdigit()}
    theirs = {t for t in b.split(" ") if t.isdigit()}
    return ours <= theirs or theirs <= ours


def compare_addresses(a: Address | None, b: Address | None) -> int | None:
    if a is None or b is None or a.latin != b.latin:
        return None
    if a.latin:
        return compare_latin_addresses(a.rest, b.rest)
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
    """Identifiers without a check digit: shared, a typo apart, or in conflict.

    Only identifiers of one authority are comparable; a typo is one edit
    (Damerau-Levenshtein: a character changed, added, dropped, or two swapped).
    """
    if not a.identifiers or not b.identifiers:
        return None
    if not a.identifiers.isdisjoint(b.identifiers):
        return 0
    level: int | None = None
    for ours in a.identifiers:
        authority, _, value = ours.partition(":")
        for theirs in b.identifiers:
            their_authority, _, other = theirs.partition(":")
            if their_authority == authority:
                if DamerauLevenshtein.distance(value, other) <= 1:
                    return 1
                level = 2
    return level


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
    Comparison("identifier", ("shared", "one_apart", "conflict"), compare_identifiers),
    Comparison("name_part", ("within", "one_same", "one_close", "none"),
               lambda a, b: compare_name_parts(a.name, b.name)),
)


def compare(a: Person, b: Person) -> Vector:
    """The comparison vector of two records, in :data:`COMPARISONS` order.

    The same as calling each comparison's function (a unit test holds them
    together), written out and with the name level worked out once for ``name``
    and ``name_part``: this runs for every candidate and every random pair of
    training.
    """
    name = compare_names(a.name, b.name)
    return (name, compare_birth_dates(a.birth_date, b.birth_date), compare_sex(a.sex, b.sex),
            compare_phones(a.phone, b.phone), compare_addresses(a.address, b.address),
            compare_unchecked_ids(a, b), compare_identifiers(a, b),
            compare_name_parts(a.name, b.name, name))
