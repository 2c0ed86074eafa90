"""Blocking keys: which earlier records a new one is compared with.

A record is compared only with records that share at least one key, so the
work per record stays bounded as the index grows. Several keys, each tolerant
of a different kind of error, keep recall:

======  ==========================================  ============================
key     made of                                     still finds the match when
======  ==========================================  ============================
id      valid or unchecked ID-card number           the name is misspelt
hc      health card number                          the ID card is missing
ph      phone                                       name and birth date differ
nb      name pinyin + birth date                    the hanzi differ (张/章)
sb      surname pinyin + birth date + sex            the given name is misspelt
gb      given-name pinyin + birth year              the surname is misspelt
nm      name pinyin + birth month and day           the year is mistyped
nr      name pinyin + reversed birth date           day and month are swapped
ad      district + street + birth year              a name is written in Latin
======  ==========================================  ============================

A key shared by too many records (a clinic's phone on every child's record, a
common name with a common birth date) says little: the index stops comparing on
a key past a size limit (see :class:`streams.empi.linker.MasterIndex`).
"""

from __future__ import annotations

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
    if person.phone:
        keys.append(f"ph:{person.phone}")
    name, born = person.name, person.birth_date
    if name is not None and born is not None:
        keys.append(f"nb:{name.pinyin}:{born:%Y%m%d}")
        keys.append(f"sb:{name.surname}:{born:%Y%m%d}:{person.sex or '-'}")
        if name.given:
            keys.append(f"gb:{name.given}:{born.year}")
        keys.append(f"nm:{name.pinyin}:{born:%m%d}")
        keys.append(f"nr:{name.pinyin}:{born.year}{born.day:02d}{born.month:02d}")
        if not name.hanzi:  # a Latin name may be in Western order
            keys.append(f"nb:{name.swapped}:{born:%Y%m%d}")
    address = person.address
    if address is not None and address.district and address.rest and born is not None:
        keys.append(f"ad:{address.district}:{address.rest[:6]}:{born.year}")
    return keys
