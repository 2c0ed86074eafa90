"""``recordTarget/patientRole`` to ``hutong.PatientIdentity`` (ADR 0001).

WS/T 500 puts the facility's numbers for the patient in ``patientRole/id`` and
the 身份证号 in ``patientRole/patient/id`` with root 2.16.156.10011.1.3 (some
senders put it in ``patientRole/id``; both are read). Identifiers are told apart
by their root OID (reference §5.3), which becomes the identifier's
``authority``; ``type`` is the HL7 table 0203 code where one fits exactly.

Not every ``patientRole/id`` names the patient: WS/T 500 templates also put the
电子申请单编号, 检验报告单号, 检验标本编号 and the like there. Only the roots in
:data:`PATIENT_ID_TYPES`, and roots outside the national arc 2.16.156.10011
(the facility's own OIDs), are patient identifiers.

``source_patient_id`` (the key of ``hutong.events.*``) is the first identifier
found in :data:`SOURCE_ID_ORDER`: the local system patient id
(2.16.156.10011.2.5.1.4, the number HL7 v2 PID-3 carries), then an id under the
facility's own OID, then the facility's record numbers (病案号, 住院号,
门(急)诊号), then the 身份证号, 健康卡号 and 健康档案号. With none of them the
document is refused (101).

Findings that do not stop the event (a wrong ID check character, a birth date
that is not a date) are quality warnings naming the place, never the value.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from hutong.errors import ValidationError
from producers.cda.paths import attr, find, findall, text, value_of
from producers.cda.xml import Element
from producers.hl7v2.patient import is_hanzi
from producers.hl7v2.types import parse_date
from producers.idcard import checked_id_card

__all__ = ["HEALTH_CARD_OID", "ID_CARD_OID", "PATIENT_ID_TYPES", "SOURCE_ID_ORDER",
           "map_record_target"]

ROLE = "recordTarget/patientRole"
ID_CARD_OID = "2.16.156.10011.1.3"
HEALTH_CARD_OID = "2.16.156.10011.1.19"
LOCAL_PATIENT_ID_OID = "2.16.156.10011.2.5.1.4"
_NATIONAL_ARC = "2.16.156.10011."
#: Stands for "a root outside the national arc" in :data:`SOURCE_ID_ORDER`.
FACILITY_OID = "facility"

#: National identifier roots that name the patient -> HL7 table 0203 type (None: no exact one).
PATIENT_ID_TYPES: dict[str, str | None] = {
    LOCAL_PATIENT_ID_OID: "PI",    # 本地系统患者ID
    "2.16.156.10011.1.13": "MR",   # 病案号
    "2.16.156.10011.1.12": None,   # 住院号
    "2.16.156.10011.1.11": None,   # 门(急)诊号
    ID_CARD_OID: "NI",             # 身份证号
    HEALTH_CARD_OID: "HC",         # 健康卡号
    "2.16.156.10011.1.2": None,    # 健康档案号
}

#: Which identifier becomes source_patient_id: the first root of this order that is present.
SOURCE_ID_ORDER = (LOCAL_PATIENT_ID_OID, FACILITY_OID, "2.16.156.10011.1.13",
                   "2.16.156.10011.1.12", "2.16.156.10011.1.11", ID_CARD_OID, HEALTH_CARD_OID,
                   "2.16.156.10011.1.2")

#: Address parts in Chinese order, largest first (省 市 县/区 乡镇/街道 街路 门牌).
_ADDRESS_PARTS = ("state", "city", "county", "township", "streetName", "houseNumber",
                  "streetAddressLine")


def _is_patient_root(root: str) -> bool:
    return root in PATIENT_ID_TYPES or not root.startswith(_NATIONAL_ARC)


def _identifiers(role: Element) -> list[tuple[str, str, str]]:
    """(root, value, location) of every patient identifier, patientRole/id first."""
    found = []
    for path in ("id", "patient/id"):
        for element in findall(role, path):
            root, value = attr(element, "root"), attr(element, "extension")
            if value and not attr(element, "nullFlavor") and _is_patient_root(root):
                found.append((root, value, f"{ROLE}/{path}[@root='{root}']"))
    return found


def _source_id(identifiers: list[tuple[str, str, str]]) -> str:
    for wanted in SOURCE_ID_ORDER:
        for root, value, _ in identifiers:
            local = wanted == FACILITY_OID and not root.startswith(_NATIONAL_ARC)
            if root == wanted or local:
                return value
    raise ValidationError("no patient identifier (patientRole/id or patient/id with an "
                          "extension)", location=f"{ROLE}/id", code="101")


def _name(patient: Element | None) -> str | None:
    name = find(patient, "name")
    family = " ".join(text(part) for part in findall(name, "family") if text(part))
    given = " ".join(text(part) for part in findall(name, "given") if text(part))
    if not family and not given:
        return text(name) or None
    if is_hanzi(family + given):
        return family + given
    return f"{family} {given}".strip()


def _phone(role: Element) -> str | None:
    for telecom in findall(role, "telecom"):
        value = value_of(telecom)
        scheme, _, number = value.partition(":")
        if not number:
            scheme, number = "tel", value
        if scheme.lower() == "tel" and number.strip():
            return number.strip()
    return None


def _address(role: Element) -> str | None:
    addr = find(role, "addr")
    if addr is None or attr(addr, "nullFlavor"):
        return None
    parts: list[str] = []
    for tag in _ADDRESS_PARTS:
        for part in findall(addr, tag):
            value = text(part)
            if value and value not in parts:
                parts.append(value)
    if not parts:  # an unstructured address: the text directly inside addr
        loose = [addr.text or "", *(child.tail or "" for child in addr)]
        return "".join(loose).strip() or None
    joined = "".join(parts)
    return joined if is_hanzi(joined) else ", ".join(parts)


def _birth_date(patient: Element | None, warnings: list[str]) -> date | None:
    where = f"{ROLE}/patient/birthTime"
    raw = value_of(find(patient, "birthTime"))
    try:
        born = parse_date(raw, where)
    except ValidationError:
        warnings.append(f"{where}: birth date is not a valid HL7 date")
        return None
    if born is not None and len(raw) < 8:
        warnings.append(f"{where}: birth date is not precise to the day")
    return born


def map_record_target(document: Element) -> tuple[dict[str, Any], list[str]]:
    """The PatientIdentity dict of the document's first recordTarget, and the warnings.

    Raises ValidationError (101) without a patientRole or without any patient identifier.
    """
    role = find(document, ROLE)
    if role is None:
        raise ValidationError("document has no recordTarget/patientRole", location=ROLE,
                              code="101")
    warnings: list[str] = []
    found = _identifiers(role)
    id_card = health_card = None
    for root, value, where in found:
        if id_card is None and root == ID_CARD_OID:
            id_card = checked_id_card(value, where, warnings)
        elif health_card is None and root == HEALTH_CARD_OID:
            health_card = value
    patient_element = find(role, "patient")
    patient = {
        "source_patient_id": _source_id(found),
        "identifiers": [{"value": value, "type": PATIENT_ID_TYPES.get(root),
                         "authority": root or None} for root, value, _ in found],
        "id_card_number": id_card,
        "health_card_number": health_card,
        "name": _name(patient_element),
        "sex": value_of(find(patient_element, "administrativeGenderCode"), "code") or None,
        "birth_date": _birth_date(patient_element, warnings),
        "phone": _phone(role),
        "address": _address(role),
    }
    return patient, warnings
