"""Blocking keys: which earlier records a new one is compared with.

A record is compared only with records that share at least one key, so the
work per record stays bounded as the index grows. Several keys, each tolerant
of a different kind of error, keep recall:

======  ==========================================  ============================
key     made of                                     still finds the match when
======  ==========================================  ============================
id      valid or unchecked ID-card number           the name is misspelt
hc      health card number                          the ID card is missing
ix      an identifier without check digit           name and birth date differ
        (``authority:value``: insurance, SSN)
ph      phone                                       name and birth date differ
nb      name pinyin + birth date                    the hanzi differ (张/章)
sb      surname pinyin + birth date + sex            the given name is misspelt
gb      given-name pinyin + birth year              the surname is misspelt
nm      name pinyin + birth month and day           the year is mistyped
nr      name pinyin + reversed birth date           day and month are swapped
ad      district + street + birth year              a name is written in Latin
lb      a Latin name's last word + birth date       Western order (given name
                                                    first) and the given name
                                                    differs or is missing
ln      a Latin name, whole                         the birth date is missing
                                                    or wrong
la      a Latin address's first number and the      name and birth date differ
        word after it (house and street)
======  ==========================================  ============================

A key shared by too many records (a clinic's phone on every child's record, a
common name with a common birth date) says little: the index stops comparing on
a key past a size limit (see :class:`streams.empi.linker.MasterIndex`).
"""

from __future__ import annotations

from itertools import pairwise

from streams.empi.address import Address
from streams.empi.person import Person

__all__ = ["blocking_keys"]


def blocking_keys(person: Person) -> list[str]:
    """The keys of one record; records sharing none are never compared."""
    keys: list[str] = []
    number = person.id_card or person.id_card_unchecked
    if number:
        keys.append(f"id:{number}")
    if person.health_card:
        keys.append(f"hc:{person.health_card}")
    keys += [f"ix:{identifier}" for identifier in sorted(person.identifiers)]
    if person.phone:
        keys.append(f"ph:{person.phone}")
    name, born = person.name, person.birth_date
    if name is not None and born is not None:
        pinyin, month, day = name.pinyin, f"{born.month:02d}", f"{born.day:02d}"
        ymd = f"{born.year}{month}{day}"
        keys.append(f"nb:{pinyin}:{ymd}")
        keys.append(f"sb:{name.surname}:{ymd}:{person.sex or '-'}")
        if name.given:
            keys.append(f"gb:{name.given}:{born.year}")
        keys.append(f"nm:{pinyin}:{month}{day}")
        keys.append(f"nr:{pinyin}:{born.year}{day}{month}")
        if not name.hanzi:  # a Latin name may be in Western order
            keys.append(f"nb:{name.swapped}:{ymd}")
            keys.append(f"lb:{name.text.rsplit(' ', 1)[-1]}:{ymd}")
    if name is not None and not name.hanzi:
        keys.append(f"ln:{name.pinyin}")
    address = person.address
    if address is not None and address.district and address.rest and born is not None:
        keys.append(f"ad:{address.district}:{address.rest[:6]}:{born.year}")
    if address is not None and address.latin and (house := _house(address)):
        keys.append(f"la:{house}")
    return keys


def _house(address: Address) -> str | None:
    """``12:stanley`` from ``12 stanley street ...``: the first number and the word after it."""
    words = address.rest.split(" ")
    for number, word in pairwise(words):
        if number.isdigit() and word.isalpha():
            return f"{number}:{word}"
    return None
