"""The practitioner registry on ``hutong.registry.practitioners``: every change an event.

The second of the guidelines' three master indexes (residents, institutions, staff):
each member of staff at each facility, with their name, ID number, practising
certificate number (执业证书编码), department, role and title. The compacted topic
is the registry (key: ``facility|staff id``, which is also the practitioner id of
every event that names them); the stream worker follows it to link the clinicians
events name (:mod:`streams.practitioners`), the API follows it to list and change it.

A practitioner file (``practitioners_file``: YAML, or the CSV an HR system
exports) seeds the topic and stays a way to manage it, as the facility file does
(:func:`file_changes`): a new entry is published, an entry changed in the file is
published again, an unchanged entry never undoes a change made through the API,
and an entry that came from the file and was taken out of it is retired.

The ID number stays in the hub: the record carries its keyed pseudonym
(``id_pseudonym``) beside it, and listings, the warehouse and anything that leaves
the hub see only that. The same person registered at two facilities (多点执业) has
the same pseudonym and the same certificate number.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hutong.errors import ConfigError
from hutong.topicfeed import TopicFeed
from hutong.yamlfile import load_model, validation_problems
from producers.idcard import validate_id_card
from producers.kafka import AsyncProducer, OutRecord
from schemas import wire
from schemas.registry import EMBEDDED, Resolver

__all__ = ["FILE", "PRACTITIONERS_TOPIC", "ROLES", "Practitioner", "PractitionerFeed",
           "PractitionerIndex", "PractitionerRecord", "file_changes", "load_practitioners",
           "publish_practitioners"]

log = logging.getLogger(__name__)

PRACTITIONERS_TOPIC = "hutong.registry.practitioners"
#: ``changed_by`` of a change the practitioner file made.
FILE = "practitioner-file"
#: Roles (人员类别), with the English words a file or request may use for them.
ROLES = ("医师", "护士", "药师", "技师", "其他")
_ROLE_WORDS = {"doctor": "医师", "physician": "医师", "nurse": "护士", "pharmacist": "药师",
               "technician": "技师", "other": "其他"}
#: An id as it may appear in a key: no whitespace and none of HL7's or the key's separators.
_ID = r"^[^\s/|^&~\\]+$"
#: A practising-certificate number: 医师 15 digits, 护士 12, 药师 others; letters allowed.
_CERTIFICATE = r"^[0-9A-Z]{6,30}$"


class Practitioner(BaseModel):
    """One member of staff at one facility, as the file or an API request writes them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    facility_id: str = Field(min_length=1, max_length=64, pattern=_ID,
                             description="The facility (registry id) they work for.")
    local_id: str = Field(min_length=1, max_length=64, pattern=_ID, description=(
        "The facility's staff id: what its messages send as ORC-12.1, PV1-7.1, ..."))
    name: str = Field(min_length=1, max_length=100)
    id_number: str | None = Field(None, description="身份证号 (GB 11643); stays in the hub.")
    certificate_number: str | None = Field(None, description="执业证书编码.")
    department: str | None = Field(None, max_length=100)
    role: str = Field("医师", description=f"One of {', '.join(ROLES)}.")
    title: str | None = Field(None, max_length=50, description="职称, e.g. 主治医师.")
    status: Literal["active", "retired"] = "active"

    @field_validator("id_number")
    @classmethod
    def _id_number(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        check = validate_id_card(value)
        if not check.well_formed:
            raise ValueError("not a GB 11643 ID number (18 characters, or the old 15 digits)")
        return check.number

    @field_validator("certificate_number")
    @classmethod
    def _certificate(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        cleaned = value.strip().upper()
        if not re.fullmatch(_CERTIFICATE, cleaned):
            raise ValueError("a practising-certificate number is 6 to 30 digits or letters")
        return cleaned

    @field_validator("role")
    @classmethod
    def _role(cls, value: str) -> str:
        role = _ROLE_WORDS.get(value.strip().lower(), value.strip())
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)} (or doctor, nurse, "
                             "pharmacist, technician, other)")
        return role

    @property
    def key(self) -> str:
        """The registry id and topic key: ``facility|staff id``."""
        return f"{self.facility_id}|{self.local_id}"

    @property
    def warnings(self) -> tuple[str, ...]:
        """Findings that did not stop it: an ID number whose check character fails."""
        if self.id_number is not None and not validate_id_card(self.id_number).valid_checksum:
            return ("id_number: the GB 11643 check character does not match",)
        return ()


@dataclass(frozen=True, slots=True)
class PractitionerRecord:
    """One version of one practitioner, as the topic holds it (schemas/practitioner.avsc)."""

    practitioner: Practitioner
    id_pseudonym: str | None
    version: int
    changed_at: datetime
    changed_by: str
    reason: str | None = None
    #: Digest of the file entry this version came from or last matched.
    file_digest: str | None = None

    @property
    def practitioner_id(self) -> str:
        return self.practitioner.key

    @property
    def active(self) -> bool:
        return self.practitioner.status == "active"

    def to_record(self) -> dict[str, Any]:
        p = self.practitioner
        return {"practitioner_id": p.key, **p.model_dump(), "id_pseudonym": self.id_pseudonym,
                "warnings": list(p.warnings), "version": self.version,
                "changed_at": self.changed_at, "changed_by": self.changed_by,
                "reason": self.reason, "file_digest": self.file_digest}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> PractitionerRecord:
        practitioner = Practitioner.model_validate(
            {name: record[name] for name in Practitioner.model_fields})
        return cls(practitioner, record.get("id_pseudonym"), record["version"],
                   record["changed_at"], record["changed_by"], record.get("reason"),
                   record.get("file_digest"))

    def shown(self) -> dict[str, Any]:
        """What a listing shows: everything but the ID number, which only its pseudonym
        stands for."""
        return {"practitioner_id": self.practitioner_id,
                **self.practitioner.model_dump(exclude={"id_number"}),
                "id_pseudonym": self.id_pseudonym,
                "warnings": list(self.practitioner.warnings), "version": self.version,
                "changed_at": self.changed_at.isoformat(), "changed_by": self.changed_by,
                "reason": self.reason}


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")

    practitioners: list[Practitioner] = Field(default_factory=list, max_length=1_000_000)


def load_practitioners(path: Path) -> tuple[Practitioner, ...]:
    """The entries of a practitioner file: YAML (``practitioners: [...]``), or CSV with a
    header row naming the fields (``facility_id,local_id,name,id_number,...``).

    Two entries for one facility and staff id are refused, as is any entry that does
    not validate; every problem names the row and field, never a value."""
    if path.suffix.lower() == ".csv":
        entries = _csv_entries(path)
    else:
        entries = list(load_model(path, _File, "practitioner file").practitioners)
    seen: set[str] = set()
    for number, entry in enumerate(entries, start=1):
        if entry.key in seen:
            raise ConfigError(f"practitioner file {path}: entry {number} repeats a facility "
                              "and staff id of an earlier entry")
        seen.add(entry.key)
    return tuple(entries)


def _csv_entries(path: Path) -> list[Practitioner]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"practitioner file {path}: cannot read ({type(exc).__name__})"
                          ) from exc
    entries = []
    for line, row in enumerate(rows, start=2):  # the header is line 1
        given = {name.strip(): value.strip() for name, value in row.items()
                 if name is not None and value is not None and value.strip()}
        try:
            entries.append(Practitioner.model_validate(given))
        except ValidationError as exc:
            raise ConfigError(f"practitioner file {path}, line {line}: "
                              f"{validation_problems(exc)}") from exc
    return entries


def file_digest(practitioner: Practitioner) -> str:
    """What a file entry says (only the fields it sets), as a digest."""
    text = json.dumps(practitioner.model_dump(mode="json", exclude_unset=True), sort_keys=True,
                      ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


Pseudonymise = Callable[[str], str]


def record_of(practitioner: Practitioner, pseudonymise: Pseudonymise, *, version: int,
              at: datetime, by: str, reason: str | None,
              digest: str | None = None) -> PractitionerRecord:
    """A record of ``practitioner`` with its ID number's pseudonym."""
    pseudonym = pseudonymise(practitioner.id_number) if practitioner.id_number else None
    return PractitionerRecord(practitioner, pseudonym, version, at, by, reason, digest)


def file_changes(entries: Sequence[Practitioner], published: Mapping[str, PractitionerRecord],
                 at: datetime, pseudonymise: Pseudonymise) -> list[PractitionerRecord]:
    """The records the file's ``entries`` call for, given what is ``published``: new and
    edited entries (an edit sets the fields it writes over a change made through the
    API), and a retirement for each entry the file made and no longer has."""
    changes: list[PractitionerRecord] = []
    in_file = set()
    for entry in entries:
        in_file.add(entry.key)
        digest = file_digest(entry)
        held = published.get(entry.key)
        if held is None:
            changes.append(record_of(entry, pseudonymise, version=1, at=at, by=FILE,
                                     reason="in the practitioner file", digest=digest))
        elif held.file_digest != digest:
            edited = entry if held.changed_by == FILE else held.practitioner.model_copy(
                update={name: getattr(entry, name) for name in entry.model_fields_set})
            changes.append(record_of(edited, pseudonymise, version=held.version + 1, at=at,
                                     by=FILE, reason="changed in the practitioner file",
                                     digest=digest))
    for key, held in sorted(published.items()):
        if key not in in_file and held.file_digest is not None and held.active:
            changes.append(record_of(held.practitioner.model_copy(update={"status": "retired"}),
                                     pseudonymise, version=held.version + 1, at=at, by=FILE,
                                     reason="taken out of the practitioner file"))
    return changes


def changed(held: PractitionerRecord, practitioner: Practitioner, pseudonymise: Pseudonymise,
            *, by: str, reason: str | None) -> PractitionerRecord:
    """The next version of ``held`` as changed through the API (the file's digest kept)."""
    return replace(record_of(practitioner, pseudonymise, version=held.version + 1,
                             at=datetime.now(UTC), by=by, reason=reason),
                   file_digest=held.file_digest)


async def publish_practitioners(producer: AsyncProducer, records: Iterable[PractitionerRecord],
                                ids: Resolver = EMBEDDED) -> int:
    """Write ``records`` to the registry topic once Kafka confirms them; how many."""
    schema = ids.for_topic(PRACTITIONERS_TOPIC)
    out = [OutRecord(PRACTITIONERS_TOPIC, r.practitioner_id.encode(),
                     wire.encode(schema, r.to_record())) for r in records]
    if out:
        await producer.send(out)
    return len(out)


Match = Literal["staff-id", "certificate"]


class PractitionerIndex:
    """Who an event's clinician is: by the facility's staff id, else by certificate number.

    Written by one feed thread, read by the stream worker's loop: each write replaces one
    dict entry (atomic under the GIL), so a reader sees a practitioner before or after a
    change, never half of one.
    """

    def __init__(self, records: Iterable[PractitionerRecord] = ()) -> None:
        self._by_key: dict[str, PractitionerRecord] = {}
        #: certificate number -> facility id -> record (one person may work at several).
        self._by_certificate: dict[str, dict[str, PractitionerRecord]] = {}
        for record in records:
            self.put(record)

    def __len__(self) -> int:
        return len(self._by_key)

    def put(self, record: PractitionerRecord) -> None:
        self.remove(record.practitioner_id)
        self._by_key[record.practitioner_id] = record
        if (number := record.practitioner.certificate_number) is not None:
            holders = dict(self._by_certificate.get(number, {}))
            holders[record.practitioner.facility_id] = record
            self._by_certificate[number] = holders

    def remove(self, practitioner_id: str) -> bool:
        held = self._by_key.pop(practitioner_id, None)
        if held is None:
            return False
        if (number := held.practitioner.certificate_number) is not None:
            holders = {f: r for f, r in self._by_certificate.get(number, {}).items()
                       if r.practitioner_id != practitioner_id}
            if holders:
                self._by_certificate[number] = holders
            else:
                self._by_certificate.pop(number, None)
        return True

    def find(self, facility_id: str, given: str) -> tuple[PractitionerRecord, Match] | None:
        """The practitioner ``given`` names at ``facility_id``: its staff id there, else a
        certificate number (the holder at that facility first, else an active holder
        elsewhere, lowest id first: a visiting doctor of the same 医共体)."""
        record = self._by_key.get(f"{facility_id}|{given}")
        if record is not None:
            return record, "staff-id"
        holders = self._by_certificate.get(given.strip().upper())
        if not holders:
            return None
        if facility_id in holders:
            return holders[facility_id], "certificate"
        ranked = sorted(holders.values(), key=lambda r: (not r.active, r.practitioner_id))
        return ranked[0], "certificate"


class PractitionerFeed(TopicFeed):
    """The registry topic followed into an index (and the latest record of each id)."""

    topic = PRACTITIONERS_TOPIC
    what = "practitioner registry"

    def __init__(self, client_config: dict[str, Any], ids: Resolver = EMBEDDED) -> None:
        super().__init__(client_config, ids)
        self._lock = threading.Lock()
        self.index = PractitionerIndex()
        self.records: dict[str, PractitionerRecord] = {}

    def apply(self, record: Mapping[str, Any]) -> bool:
        try:
            held = PractitionerRecord.from_record(record)
        except (KeyError, TypeError, ValueError) as exc:
            # One this process cannot read (from a newer hub): linked to nobody here.
            log.error("practitioner registry: the record of %r cannot be read (%s); events "
                      "naming them count as unknown here", record.get("practitioner_id"),
                      type(exc).__name__)
            if isinstance(key := record.get("practitioner_id"), str):
                self.remove(key.encode())
            return False
        self.put(held)
        return True

    def remove(self, key: bytes | None) -> bool:
        practitioner_id = (key or b"").decode(errors="replace")
        with self._lock:
            self.records.pop(practitioner_id, None)
            return self.index.remove(practitioner_id)

    def put(self, record: PractitionerRecord) -> None:
        """Take one record: from the topic, or just written by this process; an older
        version than the one held (the topic behind this process's own write) is passed
        over."""
        with self._lock:
            held = self.records.get(record.practitioner_id)
            if held is not None and record.version < held.version:
                return
            self.records[record.practitioner_id] = record
            self.index.put(record)

    def loaded(self) -> str:
        active = sum(r.active for r in self.records.values())
        return f"{len(self.records)} practitioners ({active} active)"
