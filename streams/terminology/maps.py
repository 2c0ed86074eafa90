"""Concept maps: one facility's local code to a standard code, and the store that looks them up.

A :class:`MapEntry` is one record of ``hutong.terminology.maps``
(schemas/concept-map.avsc), compacted on its :attr:`~MapEntry.key`. The
``source_system`` names the *kind* of code, one of :data:`KINDS`:

====================  ================================  ===========================
kind                  the event field it codes          usual target system
====================  ================================  ===========================
``lab-test``          lab-result ``test_code``          LOINC
``unit``              lab-result ``unit``               UCUM
``diagnosis``         diagnosis ``diagnosis_code``      ICD-10 国家临床版 2.0
``drug``              medication ``drug_code``          a regional drug code system
``sex``               ``patient.sex`` of every event    GB/T 2261.1
``marital-status``    patient ``marital_status``        GB/T 2261.2
``ethnicity``         patient ``ethnic_group``          GB 3304
``id-document-type``  ``type`` of a patient identifier  CV02.01.101
====================  ================================  ===========================

How codes compare (decided here, relied on by :mod:`.files` and :mod:`.translate`):

* ``local_code`` is exact and case-sensitive after stripping surrounding
  whitespace: LIS codes such as ``Na`` and ``NA`` may name different tests.
* ``source_system`` is stripped and lower-cased: it is one of our own kind names.
* ``facility_id`` is exact; :data:`REGION` (``*``) marks a region-wide entry,
  which any facility's own entry for the same kind and code overrides.

:class:`MapStore` keeps the entries in one dict keyed like the topic, so a
lookup is at most two dict reads. It applies entries in the order given, last
write wins, as a compacted topic delivers them per key.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = [
    "DIAGNOSIS",
    "DRUG",
    "ETHNICITY",
    "ID_DOCUMENT_TYPE",
    "KINDS",
    "LAB_TEST",
    "MARITAL_STATUS",
    "REGION",
    "SEX",
    "UNIT",
    "MapEntry",
    "MapKey",
    "MapStore",
]

LAB_TEST = "lab-test"
UNIT = "unit"
DIAGNOSIS = "diagnosis"
DRUG = "drug"
SEX = "sex"
MARITAL_STATUS = "marital-status"
ETHNICITY = "ethnicity"
ID_DOCUMENT_TYPE = "id-document-type"
#: Every kind of code a map may translate (the ``source_system`` of an entry).
KINDS = frozenset({LAB_TEST, UNIT, DIAGNOSIS, DRUG, SEX, MARITAL_STATUS, ETHNICITY,
                   ID_DOCUMENT_TYPE})
#: The ``facility_id`` of a region-wide entry.
REGION = "*"

#: (facility id, kind, local code): the identity of an entry, and the topic's compaction key.
MapKey = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class MapEntry:
    """One local code mapped to one standard code (or withdrawn, when ``deleted``).

    The constructor normalises ``facility_id``, ``source_system`` and
    ``local_code`` as the module docstring says, so two spellings of one key are
    one key.
    """

    facility_id: str
    source_system: str
    local_code: str
    target_system: str
    target_code: str
    target_display: str | None
    map_version: str
    #: When the entry was last changed (timezone aware).
    updated_at: datetime
    deleted: bool = False
    #: The platform above this entry came from (federation down), None for this hub's own.
    origin: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "facility_id", self.facility_id.strip())
        object.__setattr__(self, "source_system", self.source_system.strip().lower())
        object.__setattr__(self, "local_code", self.local_code.strip())

    @property
    def key(self) -> MapKey:
        """(facility_id, source_system, local_code)."""
        return (self.facility_id, self.source_system, self.local_code)

    @property
    def topic_key(self) -> bytes:
        """The record key on ``hutong.terminology.maps``: ``facility|source system|local code``."""
        return f"{self.facility_id}|{self.source_system}|{self.local_code}".encode()

    def same_mapping(self, other: MapEntry) -> bool:
        """True when both say the same thing (``updated_at`` aside)."""
        return (self.key, self.target_system, self.target_code, self.target_display,
                self.map_version, self.deleted) == (
                other.key, other.target_system, other.target_code, other.target_display,
                other.map_version, other.deleted)

    def to_record(self) -> dict[str, Any]:
        """The ``hutong.ConceptMap`` record (schemas/concept-map.avsc)."""
        return {
            "facility_id": self.facility_id,
            "source_system": self.source_system,
            "local_code": self.local_code,
            "target_system": self.target_system,
            "target_code": self.target_code,
            "target_display": self.target_display,
            "map_version": self.map_version,
            "updated_at": self.updated_at,
            "deleted": self.deleted,
            "origin": self.origin,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> MapEntry:
        """The entry of a decoded ``hutong.ConceptMap`` record."""
        return cls(
            facility_id=record["facility_id"],
            source_system=record["source_system"],
            local_code=record["local_code"],
            target_system=record["target_system"],
            target_code=record["target_code"],
            target_display=record.get("target_display"),
            map_version=record["map_version"],
            updated_at=record["updated_at"],
            deleted=bool(record.get("deleted", False)),
            origin=record.get("origin"),
        )


class MapStore:
    """The live concept maps, keyed for constant-time lookup."""

    __slots__ = ("_entries",)

    def __init__(self, entries: Iterable[MapEntry] = ()) -> None:
        self._entries: dict[MapKey, MapEntry] = {}
        for entry in entries:
            self.put(entry)

    def put(self, entry: MapEntry) -> bool:
        """Apply one entry: store it, or remove its key when it is ``deleted``.

        Returns True when the store changed (a repeat of the stored mapping does not).
        """
        current = self._entries.get(entry.key)
        if entry.deleted:
            return self._entries.pop(entry.key, None) is not None
        if current is not None and current.same_mapping(entry):
            return False
        self._entries[entry.key] = entry
        return True

    def lookup(self, facility_id: str, source_system: str, local_code: str) -> MapEntry | None:
        """The entry for a facility's code: its own entry, else the region-wide one, else None."""
        entries = self._entries
        system = source_system.lower()
        code = local_code.strip()
        return entries.get((facility_id, system, code)) or entries.get((REGION, system, code))

    def get(self, key: MapKey) -> MapEntry | None:
        """The entry stored under exactly ``key`` (no region-wide fallback)."""
        return self._entries.get(key)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[MapEntry]:
        return iter(list(self._entries.values()))

    def __contains__(self, key: object) -> bool:
        return key in self._entries
