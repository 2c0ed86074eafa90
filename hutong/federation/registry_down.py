"""Federation down for the facility registry: the institutions the platform above registers.

The city keeps the region's institution index (机构主索引); a district should hold
the same institutions with the same codes. The downlink follows the city's
``hutong.registry.facilities`` and applies to this hub's registry what the city
says of each institution: name, USCC, organisation code, level, kind, 医共体,
region and status (retired there, retired here). How a facility connects (its
addresses, certificate names, API keys, HL7 profile) is this hub's alone and is
never taken from above: an institution new here arrives with none, and sends
nothing until this hub's admins give it a way in.

The rule of the rule files decides (:func:`~hutong.federation.rulefiles.reconcile_file`,
on the registry fields as canonical JSON): new here, or unchanged here since the
city's last version (its digest is kept in
``<data_dir>/federation/marks-facility.json``), takes the city's; the same fields
here: nothing (and from then on the city's changes apply); fields changed here: a
conflict, reported, this hub's kept.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors.facilities import Facility
from connectors.http.federation import PLATFORM_KIND
from hutong.federation.downlink import Downlink
from hutong.federation.rulefiles import reconcile_file, sha256
from hutong.metrics import Metrics
from hutong.registry.facilities import FACILITIES_TOPIC, FacilityFeed, FacilityRecord
from schemas import wire
from schemas.registry import EMBEDDED, Resolver

__all__ = ["REGISTRY_FIELDS", "FacilityDownlink", "Marks", "registry_part"]

log = logging.getLogger(__name__)

#: What the platform above decides of an institution; the rest is this hub's.
REGISTRY_FIELDS = ("name", "uscc", "org_code", "level", "kind", "community", "region_code",
                   "status")


def registry_part(facility: Facility) -> bytes:
    """The registry fields of ``facility`` as canonical JSON."""
    data = facility.model_dump(mode="json")
    return json.dumps({name: data[name] for name in REGISTRY_FIELDS}, sort_keys=True,
                      ensure_ascii=False).encode()


class Marks:
    """The digest of what the platform above last sent, per key, kept in a JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            self._marks: dict[str, str] = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError):
            self._marks = {}

    def get(self, key: str) -> str | None:
        with self._lock:
            return self._marks.get(key)

    def put(self, key: str, digest: str) -> None:
        with self._lock:
            if self._marks.get(key) == digest:
                return
            self._marks[key] = digest
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_suffix(".tmp")
            temporary.write_text(json.dumps(self._marks, sort_keys=True), "utf-8")
            temporary.replace(self.path)


def _summary(facility: Facility) -> str:
    return " ".join(str(v) for v in (facility.name, facility.level, facility.kind,
                                     facility.status) if v)


class FacilityDownlink(Downlink[FacilityFeed]):
    """Follows the upstream's facility registry into this hub's (see the module)."""

    topic = FACILITIES_TOPIC
    what = "upstream facility registry"
    kind = "facility"

    def __init__(self, upstream_config: dict[str, Any], local_config: dict[str, Any],
                 local: FacilityFeed, metrics: Metrics, *, origin: str, marks: Path,
                 ids: Resolver = EMBEDDED) -> None:
        super().__init__(upstream_config, local_config, local, metrics, origin=origin, ids=ids)
        self._marks = Marks(marks)

    def apply(self, record: Mapping[str, Any]) -> bool:
        upstream = FacilityRecord.from_record(record)
        self.local_ready()
        facility_id = upstream.facility_id
        held = self._local.records.get(facility_id)
        theirs = registry_part(upstream.facility)
        ours = registry_part(held.facility) if held is not None else None
        outcome = reconcile_file(theirs, ours, self._marks.get(facility_id))
        self.count(outcome)
        if outcome == "conflict":
            assert held is not None  # noqa: S101 - a conflict needs a local record
            self.report(facility_id, local_target=_summary(held.facility),
                        local_version=str(held.version),
                        upstream_target=_summary(upstream.facility),
                        upstream_version=str(upstream.version))
            return False
        if outcome == "same":
            self._marks.put(facility_id, sha256(theirs))  # agreed: the city's changes apply
            return False
        fields = json.loads(theirs)
        if PLATFORM_KIND in (fields["kind"], held.facility.kind if held is not None else None):
            # who may forward events here is this hub's decision alone
            fields["kind"] = held.facility.kind if held is not None else None
        facility = (held.facility.model_copy(update=fields) if held is not None
                    else Facility.model_validate({"id": facility_id, **fields}))
        if (problem := self._local.registry.check(facility)) is not None:
            self.report(facility_id, local_target=f"refused here: {problem}",
                        local_version=str(held.version) if held is not None else None,
                        upstream_target=_summary(upstream.facility),
                        upstream_version=str(upstream.version))
            return False
        mine = FacilityRecord(facility, held.version + 1 if held is not None else 1,
                              datetime.now(UTC), f"federation:{self.origin}",
                              f"from {self.origin} (its version {upstream.version})",
                              held.file_digest if held is not None else None)
        self.send(FACILITIES_TOPIC, facility_id.encode(),
                  wire.encode(self._ids.for_topic(FACILITIES_TOPIC), mine.to_record()))
        self._local.put(mine)
        self._marks.put(facility_id, sha256(theirs))  # once it is in force here
        log.info("facility %s %s from %s", facility_id,
                 "changed" if held is not None else "registered", self.origin)
        return True
