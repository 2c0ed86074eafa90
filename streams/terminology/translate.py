"""Code translation of one canonical event: local codes to standard :class:`Coding` dicts.

:func:`translate` returns a new event (the input is never changed) whose
``codes``, ``unmapped`` and ``map_version`` are computed afresh, so a replayed
event is translated with the maps of the day, and the local codes the maps
did not cover, as :class:`UnmappedHit` values for ``hutong.terminology.unmapped``.

===========  ============================  ================  =======================================
event type   field (Coding.field)          kind              how
===========  ============================  ================  =======================================
every event  ``patient.sex``               sex               map, else the GB/T 2261.1 table
every event  ``patient.id_document_type``  id-document-type  ``01`` if ``id_card_number`` is set,
                                                             else the first identifier ``type``
                                                             a map or CV02.01.101 covers
lab-result   ``test_code``                 lab-test          map, else the code itself if
                                                             ``test_system`` is LN/LOINC and
                                                             the code is a LOINC code
lab-result   ``unit``                      unit              map, else :func:`.units.normalise_unit`
diagnosis    ``diagnosis_code``            diagnosis         map, else the code itself if
                                                             ``diagnosis_system`` is ICD-10
                                                             and the code has the 国家临床版
                                                             2.0 or the WHO shape
medication   ``drug_code``                 drug              map only
patient      ``marital_status``            marital-status    map, else the GB/T 2261.2 table
patient      ``ethnic_group``              ethnicity         map, else the GB 3304 table
===========  ============================  ================  =======================================

A facility's map wins over a region-wide map, which wins over a built-in
table or a pass-through. A field with no value is left alone; a value nothing
covers puts the field's name in ``unmapped`` and gives a hit. Identifier types
that cover nothing are not unmapped: most identifiers (MR, PI, ...) are not ID
documents at all, so ``patient.id_document_type`` is never marked.

Lab results also get ``standard_value``/``standard_unit``: ``value_numeric`` in
the analyte's standard unit when its LOINC code is in :data:`.units.CONVERSIONS`
and the unit converts, else in the normalised unit; None when the unit was not
recognised, and when no unit was sent for an analyte that needs one (a value
without a unit, such as a pH, keeps its value with no unit).

``map_version`` names what translated the event: the sorted distinct
``map_version`` of the map entries used, joined with ``+``, then
:data:`~.tables.BUILTIN_VERSION` when a built-in table or a pass-through rule
gave a code; None when no code was given. A map added later changes it on
replay, which is how the warehouse sink knows to replace the row.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple, TypeGuard

from streams.terminology.maps import (
    DIAGNOSIS,
    DRUG,
    ETHNICITY,
    ID_DOCUMENT_TYPE,
    LAB_TEST,
    MARITAL_STATUS,
    SEX,
    UNIT,
    MapEntry,
    MapStore,
)
from streams.terminology.shapes import icd10_code, is_icd10_system, is_loinc, is_loinc_system
from streams.terminology.tables import (
    BUILTIN_TABLES,
    BUILTIN_VERSION,
    CV02_01_101,
    ICD10_CN,
    ID_DOCUMENT_TABLE,
    LOINC,
    UCUM,
)
from streams.terminology.units import needs_unit, normalise_unit, to_standard

__all__ = ["Coding", "Translated", "UnmappedHit", "translate"]

#: A ``hutong.Coding`` dict: {field, system, code, display}.
Coding = dict[str, Any]

_ID_CARD = "01"
_ID_CARD_DISPLAY = ID_DOCUMENT_TABLE.codes[_ID_CARD]


class UnmappedHit(NamedTuple):
    """A local code that nothing covered on one event (a tuple: made and counted per event)."""

    facility_id: str
    #: The kind of code (``lab-test``, ``unit``, ...): the ``source_system`` a map for it needs.
    code_system: str
    local_code: str
    #: The text the facility sent with the code (test name, diagnosis name, ...).
    local_display: str | None

    @property
    def topic_key(self) -> bytes:
        """The key on ``hutong.terminology.unmapped``: ``facility|code system|local code``."""
        return f"{self.facility_id}|{self.code_system}|{self.local_code}".encode()

    def to_record(self, *, count: int, first_seen: datetime,
                  last_seen: datetime) -> dict[str, Any]:
        """The ``hutong.UnmappedCode`` record (schemas/unmapped-code.avsc) once counted."""
        return {"facility_id": self.facility_id, "code_system": self.code_system,
                "local_code": self.local_code, "local_display": self.local_display,
                "count": count, "first_seen": first_seen, "last_seen": last_seen}


class Translated(NamedTuple):
    """The translated event and the local codes nothing covered."""

    event: dict[str, Any]
    unmapped: tuple[UnmappedHit, ...]


class _Work:
    """What translation of one event has found so far."""

    __slots__ = ("builtin", "codes", "facility_id", "hits", "store", "unmapped", "versions")

    def __init__(self, facility_id: str, store: MapStore) -> None:
        self.facility_id = facility_id
        self.store = store
        self.codes: list[Coding] = []
        self.unmapped: list[str] = []
        self.hits: list[UnmappedHit] = []
        self.versions: set[str] = set()
        self.builtin = False

    def lookup(self, kind: str, raw: str) -> MapEntry | None:
        return self.store.lookup(self.facility_id, kind, raw)

    def mapped(self, field: str, entry: MapEntry) -> None:
        self.codes.append({"field": field, "system": entry.target_system,
                           "code": entry.target_code, "display": entry.target_display})
        self.versions.add(entry.map_version)

    def standard(self, field: str, system: str, code: str, display: str | None) -> None:
        self.codes.append({"field": field, "system": system, "code": code, "display": display})
        self.builtin = True

    def miss(self, field: str, kind: str, raw: str, display: str | None) -> None:
        self.unmapped.append(field)
        self.hits.append(UnmappedHit(self.facility_id, kind, raw.strip(), display))

    def coded(self, field: str, kind: str, raw: str) -> bool:
        """Code ``raw`` by map, else by the kind's built-in table; False when neither knows it."""
        entry = self.lookup(kind, raw)
        if entry is not None:
            self.mapped(field, entry)
            return True
        table = BUILTIN_TABLES.get(kind)
        found = table.lookup(raw) if table is not None else None
        if table is None or found is None:
            return False
        self.standard(field, table.system, *found)
        return True

    def table_field(self, field: str, kind: str, raw: Any) -> None:
        """Code a field with a built-in table fallback; a value nobody knows is unmapped."""
        if _present(raw) and not self.coded(field, kind, raw):
            self.miss(field, kind, raw, None)

    def map_version(self) -> str | None:
        parts = sorted(self.versions)
        if self.builtin:
            parts.append(BUILTIN_VERSION)
        return "+".join(parts) or None


def _present(value: object) -> TypeGuard[str]:
    """True for text with something in it: an empty field is missing, not unmapped."""
    return isinstance(value, str) and bool(value.strip())


def _patient(patient: Mapping[str, Any], work: _Work) -> None:
    work.table_field("patient.sex", SEX, patient.get("sex"))
    if _present(patient.get("id_card_number")):
        work.standard("patient.id_document_type", CV02_01_101, _ID_CARD, _ID_CARD_DISPLAY)
        return
    for identifier in patient.get("identifiers") or ():
        kind = identifier.get("type")
        if _present(kind) and work.coded("patient.id_document_type", ID_DOCUMENT_TYPE, kind):
            return


def _lab_result(event: Mapping[str, Any], work: _Work) -> dict[str, Any]:
    loinc: str | None = None
    raw_code = event.get("test_code")
    if _present(raw_code):
        entry = work.lookup(LAB_TEST, raw_code)
        code = raw_code.strip()
        if entry is not None:
            work.mapped("test_code", entry)
            if entry.target_system.upper() in ("LOINC", "LN"):
                loinc = entry.target_code
        elif is_loinc_system(event.get("test_system")) and is_loinc(code):
            work.standard("test_code", LOINC, code, None)
            loinc = code
        else:
            work.miss("test_code", LAB_TEST, raw_code, event.get("test_name"))

    unit: str | None = None
    raw_unit = event.get("unit")
    has_unit = False
    if _present(raw_unit):
        has_unit = True
        entry = work.lookup(UNIT, raw_unit)
        if entry is not None:
            work.mapped("unit", entry)
            unit = normalise_unit(entry.target_code) or entry.target_code
        elif (unit := normalise_unit(raw_unit)) is not None:
            work.standard("unit", UCUM, unit, None)
        else:
            work.miss("unit", UNIT, raw_unit, None)

    value = event.get("value_numeric")
    if value is None:
        return {"standard_value": None, "standard_unit": None}
    if unit is not None:
        standard_value, standard_unit = to_standard(loinc, unit, value)
        return {"standard_value": standard_value, "standard_unit": standard_unit}
    if not has_unit and not needs_unit(loinc):
        return {"standard_value": value, "standard_unit": None}
    return {"standard_value": None, "standard_unit": None}


def _diagnosis(event: Mapping[str, Any], work: _Work) -> dict[str, Any]:
    raw = event.get("diagnosis_code")
    if _present(raw):
        entry = work.lookup(DIAGNOSIS, raw)
        if entry is not None:
            work.mapped("diagnosis_code", entry)
        elif is_icd10_system(event.get("diagnosis_system")) and (code := icd10_code(raw)):
            work.standard("diagnosis_code", ICD10_CN, code, None)
        else:
            work.miss("diagnosis_code", DIAGNOSIS, raw, event.get("diagnosis_name"))
    return {}


def _medication(event: Mapping[str, Any], work: _Work) -> dict[str, Any]:
    raw = event.get("drug_code")
    if _present(raw):
        entry = work.lookup(DRUG, raw)
        if entry is not None:
            work.mapped("drug_code", entry)
        else:
            work.miss("drug_code", DRUG, raw, event.get("drug_name"))
    return {}


def _patient_event(event: Mapping[str, Any], work: _Work) -> dict[str, Any]:
    work.table_field("marital_status", MARITAL_STATUS, event.get("marital_status"))
    work.table_field("ethnic_group", ETHNICITY, event.get("ethnic_group"))
    return {}


_BY_TYPE = {
    "lab-result": _lab_result,
    "diagnosis": _diagnosis,
    "medication": _medication,
    "patient": _patient_event,
}


def translate(event: Mapping[str, Any], store: MapStore) -> Translated:
    """The event with ``codes``, ``unmapped``, ``map_version`` (and for lab results
    ``standard_value``/``standard_unit``) set from ``store`` and the built-in tables."""
    work = _Work(event["facility_id"], store)
    _patient(event.get("patient") or {}, work)
    by_type = _BY_TYPE.get(event.get("event_type", ""))
    extra = by_type(event, work) if by_type is not None else {}
    translated = {**event, **extra, "codes": work.codes, "unmapped": work.unmapped,
                  "map_version": work.map_version()}
    return Translated(translated, tuple(work.hits))
