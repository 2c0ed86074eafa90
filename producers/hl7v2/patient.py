"""PID to ``hutong.PatientIdentity`` (ADR 0001): the patient as the facility sent it.

Chinese hospitals put the 身份证号 in a PID-3 repetition typed ``SFZH`` (or
``NI``/``ID``) or in PID-19, and the 电子健康卡 in one typed ``JKK``/``HC``.
Which types mean what is a :class:`PatientProfile`, so a facility with its own
conventions gets its own profile.

Findings that do not stop the event (a wrong ID check character, a birth date
that is not a date) come back as quality warnings naming the field, never the
value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hutong.errors import ValidationError
from producers.hl7v2.message import Segment
from producers.hl7v2.types import parse_date
from producers.idcard import checked_id_card

__all__ = ["DEFAULT_PROFILE", "PATIENT_KEYS", "PatientProfile", "is_hanzi", "map_patient"]

#: The keys of a ``hutong.PatientIdentity`` dict.
PATIENT_KEYS = ("source_patient_id", "identifiers", "id_card_number", "health_card_number",
                "name", "sex", "birth_date", "phone", "address")


@dataclass(frozen=True, slots=True)
class PatientProfile:
    """Where a facility puts the patient's numbers and name.

    ``id_card_field``: "PID-3" (a repetition typed as one of ``id_card_types``),
    "PID-19", or None for PID-3 first, then PID-19. ``name_component``: the PID-5
    component that holds the whole Chinese name (1 or 2), or None to guess.
    """

    id_card_types: frozenset[str] = frozenset({"SFZH", "NI", "ID"})
    health_card_types: frozenset[str] = frozenset({"JKK", "HC"})
    id_card_field: str | None = None
    name_component: int | None = None


DEFAULT_PROFILE = PatientProfile()


def is_hanzi(text: str) -> bool:
    """True if ``text`` holds at least one CJK ideograph."""
    return any(
        "\u4e00" <= c <= "\u9fff" or "\u3400" <= c <= "\u4dbf" or "\uf900" <= c <= "\ufaff"
        or "\U00020000" <= c <= "\U0003134f"
        for c in text
    )


def _name(pid: Segment, component: int | None) -> str | None:
    if component is not None:
        return pid.get(5, component).strip() or None
    family, given = pid.get(5, 1).strip(), pid.get(5, 2).strip()
    if not given:
        return family or None
    if is_hanzi(family + given):
        if len(family) > len(given) and family.endswith(given):
            return family  # the full name sent in XPN.1, the given name repeated in XPN.2
        return family + given
    return f"{family} {given}".strip()


def _phone(pid: Segment) -> str | None:
    for rep in range(1, len(pid.repetitions(13)) + 1):
        number = (pid.get(13, 1, rep) or pid.get(13, 12, rep)
                  or pid.get(13, 6, rep) + pid.get(13, 7, rep)).strip()
        if number:
            return number
    return None


def _address(pid: Segment) -> str | None:
    street = pid.get(11, 1).strip()
    district = pid.get(11, 9).strip()
    if district.isdigit():
        district = ""  # a GB/T 2260 division code, not a name
    parts: list[str] = []
    for part in (pid.get(11, 4).strip(), pid.get(11, 3).strip(), district):
        if part and part not in parts and part not in street:
            parts.append(part)
    if street:
        parts.append(street)
    if not parts:
        return None
    return "".join(parts) if is_hanzi("".join(parts)) else ", ".join(parts)


def map_patient(
    pid: Segment, profile: PatientProfile = DEFAULT_PROFILE
) -> tuple[dict[str, Any], list[str]]:
    """The PatientIdentity dict for a PID segment, and the quality warnings.

    Raises ValidationError (101) when neither PID-3 nor PID-2 holds a patient id.
    """
    warnings: list[str] = []
    identifiers: list[dict[str, Any]] = []
    id_card = health_card = None
    by_type = profile.id_card_field != "PID-19"
    for rep in range(1, len(pid.repetitions(3)) + 1):
        value = pid.get(3, 1, rep).strip()
        if not value:
            continue
        kind = pid.get(3, 5, rep).strip().upper()
        identifiers.append({"value": value, "type": kind or None,
                            "authority": pid.get(3, 4, rep).strip() or None})
        if id_card is None and kind in profile.id_card_types and by_type:
            id_card = checked_id_card(value, pid.location(3, rep), warnings)
        elif health_card is None and kind in profile.health_card_types:
            health_card = value
    if id_card is None and profile.id_card_field != "PID-3" and (ssn := pid.get(19).strip()):
        id_card = checked_id_card(ssn, pid.location(19), warnings)
    source_id = pid.get(3, 1).strip() or pid.get(2, 1).strip()
    if not source_id:
        raise ValidationError("patient identifier (PID-3, first repetition) is empty",
                              location=pid.location(3), code="101")
    raw_birth = pid.get(7, 1).strip()
    try:
        birth_date = parse_date(raw_birth, pid.location(7))
    except ValidationError:
        birth_date = None
        warnings.append(f"{pid.location(7)}: birth date is not a valid HL7 date")
    if birth_date is not None and len(raw_birth) < 8:
        warnings.append(f"{pid.location(7)}: birth date is not precise to the day")
    patient = {
        "source_patient_id": source_id,
        "identifiers": identifiers,
        "id_card_number": id_card,
        "health_card_number": health_card,
        "name": _name(pid, profile.name_component),
        "sex": pid.get(8).strip() or None,
        "birth_date": birth_date,
        "phone": _phone(pid),
        "address": _address(pid),
    }
    return patient, warnings
