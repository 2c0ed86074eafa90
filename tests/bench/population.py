"""A synthetic Chinese population with known truth, for the EMPI tests and bench.

People are drawn with Faker (zh_CN): name, sex, birth date, a valid GB 11643 ID
card consistent with both, a mobile phone, an address. They live in households
that share a phone and an address; some households have twins (same surname,
birth date, phone and address: the hardest non-matches). Each person then
appears at one to four facilities, each record with the variations real feeds
have, at the given rates:

* the ID card missing, mistyped (one digit: the check fails), or in the 15-digit
  form; a newborn registered under the mother's ID card;
* the name as a homophone (张/章), in traditional characters, in pinyin only
  (sometimes given name first), or with a character dropped;
* the birth date with a wrong digit, or day and month swapped, or missing;
* sex missing or coded M/F instead of 1/2;
* the phone missing, changed or mistyped; the address moved, without the
  province, or missing; the health card present at some facilities.

``records`` are PatientIdentity dicts (schemas/hutong.PatientIdentity.avsc)
with their facility and the true person, so any linker can be scored.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from faker import Faker
from pypinyin import lazy_pinyin

from producers.idcard import check_character
from streams.empi.names import COMPOUND_SURNAMES

__all__ = ["Population", "SourceRecord", "generate", "pairwise_scores"]

_FACILITIES = ("XQRMYY", "XQZYY", "DCWSY", "NJZWSY", "XQFYBJ", "SQWSFWZX")
_TRADITIONAL = str.maketrans("张刘陈杨黄赵吴孙马郑谢韩冯邓许萧叶蒋卢苏贾钟罗伟华国红丽军杰涛",
                             "張劉陳楊黃趙吳孫馬鄭謝韓馮鄧許蕭葉蔣盧蘇賈鍾羅偉華國紅麗軍傑濤")
_REGIONS = ("110105", "310104", "440106", "330106", "420106", "510107", "320102", "370102")


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One facility's record of one true person."""

    facility_id: str
    patient: dict[str, Any]
    person: int


@dataclass(frozen=True, slots=True)
class Population:
    people: int
    records: list[SourceRecord]


@dataclass(slots=True)
class _Person:
    surname: str
    given: str
    male: bool
    born: date
    id_card: str
    phone: str
    address: tuple[str, str, str, str]
    health_card: str
    mother_id: str | None = None


def _id_card(rng: random.Random, born: date, male: bool) -> str:
    sequence = rng.randrange(0, 50) * 2 + (1 if male else 0)
    first17 = f"{rng.choice(_REGIONS)}{born:%Y%m%d}{rng.randrange(10)}{sequence:02d}"
    return first17 + check_character(first17)


def _homophones(fake: Faker) -> dict[str, list[str]]:
    """Characters of given names grouped by pinyin: the input-method typo table."""
    chars = {c for name in (fake.first_name() for _ in range(3000)) for c in name}
    groups: dict[str, list[str]] = defaultdict(list)
    for c in sorted(chars):
        groups[lazy_pinyin(c)[0]].append(c)
    return {c: [o for o in groups[lazy_pinyin(c)[0]] if o != c] for c in chars}


def _people(fake: Faker, rng: random.Random, count: int) -> list[_Person]:
    people: list[_Person] = []
    while len(people) < count:
        surname = fake.last_name()
        if rng.random() < 0.01:
            surname = rng.choice(sorted(COMPOUND_SURNAMES))
        phone = fake.phone_number()
        address = (fake.province(), fake.city_name() + "市", fake.district() + "区",
                   f"{fake.street_name()}{rng.randrange(1, 300)}号")
        household = rng.choice((1, 2, 2, 3, 3, 4))
        mother: _Person | None = None
        for member in range(household):
            male = rng.random() < 0.5
            if member and rng.random() < 0.03 and people:  # twins: the previous member's day
                born = people[-1].born
            else:
                born = date(1930, 1, 1) + timedelta(days=rng.randrange(0, 95 * 365))
            given = fake.first_name_male() if male else fake.first_name_female()
            person = _Person(surname, given, male, born, _id_card(rng, born, male), phone,
                             address, f"HC{rng.randrange(10**15):015d}")
            if mother is None and not male and born.year < 2000:
                mother = person
            elif mother is not None and born.year >= 2024:
                person.mother_id = mother.id_card  # registered under the mother's card
            people.append(person)
    return people[:count]


def _vary(rng: random.Random, fake: Faker, person: _Person, homophones: dict[str, list[str]],
          spid: str) -> dict[str, Any]:
    """One facility's record of the person, with its errors."""
    given = person.given
    name = person.surname + given
    roll = rng.random()
    if roll < 0.05 and any(homophones.get(c) for c in given):
        at = next(i for i, c in enumerate(given) if homophones.get(c))
        name = person.surname + given[:at] + rng.choice(homophones[given[at]]) + given[at + 1:]
    elif roll < 0.08:
        name = name.translate(_TRADITIONAL)
    elif roll < 0.13:
        surname, rest = (" ".join(lazy_pinyin(person.surname)).replace(" ", ""),
                         "".join(lazy_pinyin(given)))
        name = f"{rest} {surname}".title() if rng.random() < 0.3 else f"{surname} {rest}".upper()
    elif roll < 0.15 and len(given) > 1:
        name = person.surname + given[:-1]
    id_card: str | None = person.id_card
    roll = rng.random()
    if person.mother_id is not None and roll < 0.5:
        id_card = person.mother_id
    elif roll < 0.20:
        id_card = None
    elif roll < 0.23:
        at = rng.randrange(6, 17)
        id_card = id_card[:at] + str((int(id_card[at]) + rng.randrange(1, 10)) % 10) + \
            id_card[at + 1:]
    elif roll < 0.26 and person.born.year < 2000:
        id_card = id_card[:6] + id_card[8:17]  # the 15-digit form
    born: date | None = person.born
    roll = rng.random()
    if roll < 0.03:
        text = f"{person.born:%Y%m%d}"
        at = rng.randrange(2, 8)
        text = text[:at] + str((int(text[at]) + 1) % 10) + text[at + 1:]
        try:
            born = date(int(text[:4]), int(text[4:6]), int(text[6:]))
        except ValueError:
            born = person.born
    elif roll < 0.05 and person.born.day <= 12:
        born = date(person.born.year, person.born.day, person.born.month)
    elif roll < 0.06:
        born = None
    sex = ("M" if person.male else "F") if rng.random() < 0.5 else ("1" if person.male else "2")
    phone: str | None = person.phone
    roll = rng.random()
    if roll < 0.20:
        phone = None
    elif roll < 0.30:
        phone = fake.phone_number()
    elif roll < 0.33:
        phone = phone[:-1] + str((int(phone[-1]) + 1) % 10)
    province, city, district, street = person.address
    address: str | None = province + city + district + street
    roll = rng.random()
    if roll < 0.15:
        address = fake.province() + fake.city_name() + "市" + fake.district() + "区" + \
            fake.street_name() + "1号"
    elif roll < 0.45:
        address = district + street
    elif roll < 0.65:
        address = None
    return {
        "source_patient_id": spid,
        "identifiers": [],
        "id_card_number": id_card,
        "health_card_number": person.health_card if rng.random() < 0.2 else None,
        "name": name,
        "sex": None if rng.random() < 0.02 else sex,
        "phone": phone,
        "address": address,
        "birth_date": born,
    }


def generate(people: int, seed: int = 20261122) -> Population:
    """``people`` persons, each at one to four facilities, shuffled as they would arrive."""
    rng = random.Random(seed)
    fake = Faker("zh_CN")
    fake.seed_instance(seed)
    homophones = _homophones(fake)
    records: list[SourceRecord] = []
    for index, person in enumerate(_people(fake, rng, people)):
        visits = rng.choice((1, 1, 2, 2, 2, 3, 3, 4))
        for facility in rng.sample(_FACILITIES, visits):
            spid = f"P{rng.randrange(10**9):09d}"
            records.append(SourceRecord(facility, _vary(rng, fake, person, homophones, spid),
                                        index))
    rng.shuffle(records)
    return Population(people, records)


def pairwise_scores(truth: list[int], predicted: list[str]) -> tuple[float, float, int, int,
                                                                        int]:
    """Pairwise precision, recall, and the true, false and missed pair counts."""
    def pairs(labels: list[Any]) -> set[tuple[int, int]]:
        groups: dict[Any, list[int]] = defaultdict(list)
        for i, label in enumerate(labels):
            groups[label].append(i)
        return {(a, b) for members in groups.values() for x, a in enumerate(members)
                for b in members[x + 1:]}

    true_pairs, found = pairs(truth), pairs(predicted)
    hits = len(true_pairs & found)
    precision = hits / len(found) if found else 1.0
    recall = hits / len(true_pairs) if true_pairs else 1.0
    return precision, recall, hits, len(found - true_pairs), len(true_pairs - found)
