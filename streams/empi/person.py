"""A facility's patient record, normalised for matching.

:func:`person_from_event` reads the ``patient`` (schemas/hutong.PatientIdentity)
of any canonical event. Everything is normalised once here, so comparing two
records is cheap: the ID card upgraded to 18 characters and checked (GB 11643),
the name parsed (:mod:`streams.empi.names`), sex to GB/T 2261.1 (``1`` male,
``2`` female; unknown and unspecified count as missing), the phone to its
digits without the country code, the address to its levels.

Identifiers other than the ID and health card (MRNs, insurance numbers) have no
check digit: they are evidence, not proof. A record keeps those whose assigning
authority is known, as ``authority:value``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime
from typing import Any

from producers.idcard import validate_id_card
from streams.empi.address import Address, parse_address
from streams.empi.names import Name, parse_name

__all__ = ["Person", "RecordKey", "normalise_phone", "normalise_sex", "person_from_event",
           "updated"]

#: (facility id, the facility's patient id): one source record.
RecordKey = tuple[str, str]

#: HL7 table 0001 and GB/T 2261.1 codes (and the Chinese words) to GB/T 2261.1.
_SEX = {"M": "1", "1": "1", "男": "1", "男性": "1", "F": "2", "2": "2", "女": "2",
        "女性": "2"}
_PHONE_DIGITS = re.compile(r"\D+")


@dataclass(frozen=True, slots=True)
class Person:
    """One source record, ready for the comparators and the blocking keys."""

    facility_id: str
    source_patient_id: str
    #: A well-formed GB 11643 number with a matching check character: proof of identity.
    id_card: str | None = None
    #: A number in the ID-card field that is not valid: compared as evidence only.
    id_card_unchecked: str | None = None
    health_card: str | None = None
    name: Name | None = None
    sex: str | None = None
    birth_date: date | None = None
    phone: str | None = None
    address: Address | None = None
    #: ``authority:value`` of identifiers without a check digit (never the facility's own MRN).
    identifiers: frozenset[str] = field(default_factory=frozenset)
    #: When the facility said this (for survivorship: most recent wins).
    observed_at: datetime | None = None

    @property
    def key(self) -> RecordKey:
        return (self.facility_id, self.source_patient_id)


def normalise_sex(code: str | None) -> str | None:
    """``1`` or ``2`` (GB/T 2261.1); None for unknown, unspecified or anything else."""
    if code is None:
        return None
    return _SEX.get(code.strip().upper())


def normalise_phone(raw: str | None) -> str | None:
    """The digits of a phone number without +86/0086; None when fewer than 7 remain."""
    if raw is None:
        return None
    digits = _PHONE_DIGITS.sub("", unicodedata.normalize("NFKC", raw))
    for prefix in ("0086", "86"):
        if digits.startswith(prefix) and len(digits) - len(prefix) == 11:
            digits = digits[len(prefix):]
    return digits if len(digits) >= 7 else None


def _identifiers(patient: Mapping[str, Any], facility_id: str) -> frozenset[str]:
    found = set()
    for identifier in patient.get("identifiers") or ():
        authority = (identifier.get("authority") or "").strip()
        value = (identifier.get("value") or "").strip()
        if not value or not authority or authority == facility_id:
            continue  # the facility's own numbers are the record key, not evidence
        found.add(f"{authority}:{value}")
    return frozenset(found)


def _someone_elses(card_born: date | None, born: date | None) -> bool:
    """Whether an ID card's own birth date says it is another person's.

    A GB 11643 number carries its holder's birth date. A newborn is often
    registered under the mother's card, a child under a parent's: the card is
    then the guardian's, proof of nothing about this record, and is left out.
    A birth date a year or less apart is a typo on one side, not another person.
    """
    return card_born is not None and born is not None and abs((card_born - born).days) > 366


def person_from_event(facility_id: str, patient: Mapping[str, Any],
                      observed_at: datetime | None = None) -> Person:
    """The normalised record of one event's ``patient``."""
    id_card = unchecked = None
    born = patient.get("birth_date")
    sex = normalise_sex(patient.get("sex"))
    if raw_id := (patient.get("id_card_number") or "").strip():
        check = validate_id_card(raw_id)
        if not _someone_elses(check.birth_date, born):
            if check.valid:
                id_card = check.number
                # The number says when its holder was born and which sex: what the
                # record leaves out, the card tells.
                born = born or check.birth_date
                sex = sex or _SEX.get(check.sex or "")
            else:
                unchecked = check.number
    health_card = (patient.get("health_card_number") or "").strip() or None
    return Person(
        facility_id=facility_id,
        source_patient_id=patient["source_patient_id"],
        id_card=id_card,
        id_card_unchecked=unchecked,
        health_card=health_card,
        name=parse_name(patient.get("name")),
        sex=sex,
        birth_date=born,
        phone=normalise_phone(patient.get("phone")),
        address=parse_address(patient.get("address")),
        identifiers=_identifiers(patient, facility_id),
        observed_at=observed_at,
    )


def updated(known: Person, news: Person) -> Person:
    """``known`` with what ``news`` says about the same record.

    A lab result often carries only the patient id and name; it must not wipe the
    ID card an admission gave. A value ``news`` has replaces the known one; a
    value it lacks is kept; identifiers accumulate. News older than what is known
    (a message delivered late) only fills in what is missing.
    """
    late = (news.observed_at is not None and known.observed_at is not None
            and news.observed_at < known.observed_at)
    changes = {f.name: getattr(news, f.name) for f in fields(news)
               if f.name != "identifiers" and getattr(news, f.name) is not None
               and not (late and getattr(known, f.name) is not None)}
    if news.id_card is not None and not late:  # a valid number: the unchecked one was a typo
        changes.setdefault("id_card_unchecked", None)
    return replace(known, **changes, identifiers=known.identifiers | news.identifiers)
