"""The facility registry on ``hutong.registry.facilities``: every change an event, followed live.

The compacted topic is the registry: one record per facility (key: its id), the
latest version of what the hub knows about it, active or retired. Everything that
authenticates facilities (the connectors, the API's ingest and retries) follows
the topic (:class:`FacilityFeed`) into its :class:`~connectors.facilities.FacilityRegistry`,
so a facility added, changed or retired through the API is in force on the next
message, without a restart.

The registry file (``facilities_file``) seeds the topic and stays a way to manage
it (:func:`file_changes`): at start, an entry that is not on the topic is
published; an entry that changed in the file since it was last published from it
is published again; an unchanged entry never undoes a change made through the API;
a facility whose record came from the file and is no longer in it is retired (taking
a facility out of the file revokes it, as it always did).

Records of one facility arrive in the order they were written (one key, one
partition), so every follower ends at the same state as compaction does: the
latest record wins. ``version`` counts the changes, for the API's lost-update check.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from connectors.facilities import Facility, FacilityRegistry
from hutong.topicfeed import TopicFeed
from producers.kafka import AsyncProducer, OutRecord
from schemas import wire
from schemas.registry import EMBEDDED, Resolver

__all__ = ["FACILITIES_TOPIC", "FILE", "FacilityFeed", "FacilityRecord", "file_changes",
           "file_digest", "publish_facilities"]

log = logging.getLogger(__name__)

FACILITIES_TOPIC = "hutong.registry.facilities"
#: ``changed_by`` of a change the registry file made.
FILE = "registry-file"
#: The settings a connector needs, carried as one JSON field of the record.
_CONNECTION = ("mllp_sources", "tls_names", "api_keys", "ack_mode", "profile")
_REGISTRY = ("uscc", "org_code", "level", "kind", "community", "region_code")


@dataclass(frozen=True, slots=True)
class FacilityRecord:
    """One version of one facility, as the topic holds it (schemas/facility.avsc)."""

    facility: Facility
    version: int
    changed_at: datetime
    changed_by: str
    reason: str | None = None
    #: Digest of the registry-file entry this version came from or last matched.
    file_digest: str | None = None

    @property
    def facility_id(self) -> str:
        return self.facility.id

    def to_record(self) -> dict[str, Any]:
        data = self.facility.model_dump(mode="json")
        return {
            "facility_id": self.facility.id, "name": self.facility.name,
            **{field: data[field] for field in _REGISTRY},
            "status": self.facility.status, "warnings": list(self.facility.code_warnings),
            "connection": json.dumps({field: data[field] for field in _CONNECTION},
                                     ensure_ascii=False, sort_keys=True),
            "version": self.version, "changed_at": self.changed_at,
            "changed_by": self.changed_by, "reason": self.reason,
            "file_digest": self.file_digest,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> FacilityRecord:
        facility = Facility.model_validate({
            "id": record["facility_id"], "name": record["name"], "status": record["status"],
            **{field: record[field] for field in _REGISTRY},
            **json.loads(record["connection"])})
        return cls(facility, record["version"], record["changed_at"], record["changed_by"],
                   record.get("reason"), record.get("file_digest"))


def file_digest(facility: Facility) -> str:
    """What an entry of the registry file says (only the fields it sets), as a digest:
    equal entries, equal digests, and an upgrade that adds a field or changes a default
    changes none."""
    text = json.dumps(facility.model_dump(mode="json", exclude_unset=True), sort_keys=True,
                      ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def file_changes(entries: Sequence[Facility], published: Mapping[str, FacilityRecord],
                 at: datetime) -> list[FacilityRecord]:
    """The records the registry file's ``entries`` call for, given what is ``published``.

    A new entry is published; an edited one too: whole when the file made the record
    last, else only the fields the entry sets go over what the API made (a retirement
    made through the API stands unless the entry says ``status``); an entry that was
    published from the file and is no longer in it is retired.
    """
    changes: list[FacilityRecord] = []
    in_file = set()
    for facility in entries:
        in_file.add(facility.id)
        digest = file_digest(facility)
        held = published.get(facility.id)
        if held is None:
            changes.append(FacilityRecord(facility, 1, at, FILE, "in the registry file",
                                          digest))
        elif held.file_digest != digest:
            changes.append(FacilityRecord(_edited(held, facility), held.version + 1, at, FILE,
                                          "changed in the registry file", digest))
    for facility_id, held in sorted(published.items()):
        if (facility_id not in in_file and held.file_digest is not None
                and held.facility.status == "active"):
            changes.append(FacilityRecord(
                held.facility.model_copy(update={"status": "retired"}), held.version + 1, at,
                FILE, "taken out of the registry file", None))
    return changes


def _edited(held: FacilityRecord, entry: Facility) -> Facility:
    if held.changed_by == FILE:
        return entry
    said = {name: getattr(entry, name) for name in entry.model_fields_set}
    overridden = sorted(name for name, value in said.items()
                        if name != "id" and getattr(held.facility, name) != value)
    if overridden:
        log.warning("facility %s: the registry file's edit sets %s over a change made by %s "
                    "through the API", entry.id, ", ".join(overridden), held.changed_by)
    return held.facility.model_copy(update=said)


def changed(held: FacilityRecord, facility: Facility, *, by: str, reason: str | None,
            at: datetime | None = None) -> FacilityRecord:
    """The next version of ``held``: ``facility`` as changed ``by`` someone, the file's
    digest kept (an API change is not a file change)."""
    return replace(held, facility=facility, version=held.version + 1,
                   changed_at=at or datetime.now(UTC), changed_by=by, reason=reason)


async def publish_facilities(producer: AsyncProducer, records: Iterable[FacilityRecord],
                             ids: Resolver = EMBEDDED) -> int:
    """Write ``records`` to the registry topic once Kafka confirms them; how many."""
    schema = ids.for_topic(FACILITIES_TOPIC)
    out = [OutRecord(FACILITIES_TOPIC, r.facility_id.encode(), wire.encode(schema, r.to_record()))
           for r in records]
    if out:
        await producer.send(out)
    return len(out)


class FacilityFeed(TopicFeed):
    """The registry topic followed into ``registry`` by a daemon thread."""

    topic = FACILITIES_TOPIC
    what = "facility registry"

    def __init__(self, client_config: dict[str, Any], registry: FacilityRegistry,
                 ids: Resolver = EMBEDDED,
                 on_change: Callable[[Facility], None] | None = None) -> None:
        super().__init__(client_config, ids)
        self._lock = threading.Lock()
        self._on_change = on_change
        self.registry = registry
        #: The latest record of each facility id.
        self.records: dict[str, FacilityRecord] = {}

    def apply(self, record: Mapping[str, Any]) -> bool:
        try:
            held = FacilityRecord.from_record(record)
        except (KeyError, TypeError, ValueError) as exc:
            # Fail closed: a facility whose latest record this process cannot read (written
            # by a newer hub, say) authenticates nothing here, rather than what it was.
            facility_id = record.get("facility_id")
            log.error("facility registry: the record of %r cannot be read (%s); it opens "
                      "nothing here until a readable one comes", facility_id,
                      type(exc).__name__)
            if isinstance(facility_id, str):
                self.remove(facility_id.encode())
            return False
        self.put(held)
        return True

    def remove(self, key: bytes | None) -> bool:
        """A tombstone takes a facility out entirely (an entry made by mistake, a test's
        registry cleared); hutong itself retires, and never writes one."""
        facility_id = (key or b"").decode(errors="replace")
        with self._lock:
            if self.records.pop(facility_id, None) is None:
                return False
            self.registry.remove(facility_id)
        return True

    def put(self, record: FacilityRecord) -> None:
        """Take one record: from the topic, or just written by this process (applied at
        once; its copy from the topic, later, changes nothing more). An older version than
        the one held is the topic catching up behind this process's own write (versions
        only grow): it is passed over, or a retirement just made would be undone."""
        with self._lock:
            held = self.records.get(record.facility_id)
            if held is not None and record.version < held.version:
                return
            self.records[record.facility_id] = record
            self.registry.put(record.facility)
        if self._on_change is not None:
            self._on_change(record.facility)

    def loaded(self) -> str:
        active = sum(r.facility.status == "active" for r in self.records.values())
        return f"{len(self.records)} facilities ({active} active)"
