"""Federation down: the platform above's code maps applied here, conflicts reported.

The guidelines want a district's and the city's dictionaries identical
(市区两级数据标准字典库严格保持一致). The downlink follows the upstream's
``hutong.terminology.maps`` (its Kafka, read-only, no consumer group: the
compacted topic read whole at each start) and, for each of its entries, decides
against this hub's maps (:func:`reconcile`):

* nothing here for that code, or what is here came from the upstream: the
  entry is published on this hub's ``hutong.terminology.maps`` with
  ``origin`` set to the upstream's name and the upstream's ``map_version``, so
  every event translated with it says which dictionary version it used;
* this hub's own map (``origin`` empty) says the same: nothing to do;
* this hub's own map says something else: a **conflict**. This hub's map stays
  (a district's steward may know better, or be wrong: a person decides); the
  conflict goes on ``hutong.federation.conflicts`` and into the metrics, and
  ``GET /api/v1/federation`` lists the latest. Withdrawing the local map
  lets the upstream's apply, at the next start or the next upstream change.

A withdrawal upstream withdraws what came from it, never a local map.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar

from confluent_kafka import Producer

from hutong.metrics import Metrics
from hutong.topicfeed import TopicFeed
from schemas import wire
from schemas.registry import EMBEDDED, Resolver
from streams.mapfeed import MAPS_TOPIC, MapFeed
from streams.terminology.maps import MapEntry

__all__ = ["CONFLICTS_TOPIC", "DictionaryDownlink", "Downlink", "reconcile"]

log = logging.getLogger(__name__)

CONFLICTS_TOPIC = "hutong.federation.conflicts"
Outcome = Literal["apply", "same", "conflict"]


def reconcile(upstream: MapEntry, local: MapEntry | None, origin: str) -> Outcome:
    """What to do with the upstream's ``upstream`` given this hub's ``local`` entry.

    An entry with any ``origin`` came from above (the upstream's name may have changed
    since); this hub's own entry that says the same as the upstream's is adopted
    (``apply``: republished with the origin, so the upstream's later changes apply)."""
    if local is None:
        return "same" if upstream.deleted else "apply"
    if local.origin is not None:
        return "same" if local.same_mapping(upstream) and local.origin == origin else "apply"
    if upstream.deleted:
        return "same"  # a withdrawal above never withdraws what is ours
    return "apply" if _says(local) == _says(upstream) else "conflict"


def _says(entry: MapEntry) -> tuple[str, str, bool]:
    return (entry.target_system, entry.target_code, entry.deleted)


def _target(entry: MapEntry) -> str:
    return "withdrawn" if entry.deleted else f"{entry.target_system} {entry.target_code}"


Local = TypeVar("Local", bound=TopicFeed)


class Downlink(TopicFeed, Generic[Local]):
    """Follows one of the upstream's compacted topics and applies what it may to this
    hub's, which ``local`` follows; subclasses say how (:meth:`apply`), this keeps the
    counts and reports conflicts."""

    kind: str

    def __init__(self, upstream_config: dict[str, Any], local_config: dict[str, Any],
                 local: Local, metrics: Metrics, *, origin: str,
                 ids: Resolver = EMBEDDED) -> None:
        super().__init__(upstream_config, ids)
        self._local = local
        self._metrics = metrics
        self.origin = origin
        self._ids = ids
        self._producer = Producer({**local_config, "acks": "all", "enable.idempotence": True})
        self._lock = threading.Lock()
        #: The latest conflicts found, newest last.
        self.conflicts: deque[dict[str, Any]] = deque(maxlen=200)
        self.counts = {"apply": 0, "same": 0, "conflict": 0}
        #: Conflicts reported already (key and both sides): the feed reads the upstream
        #: again from its start after an error, and a conflict is reported once.
        self._reported: set[tuple[str, str, str]] = set()

    def local_ready(self) -> None:
        """Wait for this hub's side to be read whole; raised into the feed otherwise (it
        reads the upstream again from its start)."""
        if not self._local.wait_ready(30):
            raise RuntimeError(f"this hub's {self._local.what} was not read in 30 s")

    def count(self, outcome: Outcome) -> None:
        with self._lock:
            self.counts[outcome] += 1
        self._metrics.federation_dictionary.labels(self.kind, outcome).inc()

    def report(self, key: str, *, local_target: str, upstream_target: str,
               local_version: str | None, upstream_version: str | None) -> None:
        """A conflict: on the conflicts topic, in the log, in :meth:`status` (once)."""
        seen = (key, local_target, upstream_target)
        with self._lock:
            if seen in self._reported:
                return
            self._reported.add(seen)
        found = datetime.now(UTC)
        conflict: dict[str, Any] = {
            "kind": self.kind, "key": key, "upstream": self.origin,
            "local_target": local_target, "local_version": local_version,
            "upstream_target": upstream_target, "upstream_version": upstream_version,
            "detected_at": found, "resolution": "kept-local"}
        log.warning("%s %s: the upstream %s says %s (version %s), this hub says %s; kept "
                    "this hub's", self.kind, key, self.origin, upstream_target,
                    upstream_version, local_target)
        self.send(CONFLICTS_TOPIC, key.encode(),
                  wire.encode(self._ids.for_topic(CONFLICTS_TOPIC), conflict))
        with self._lock:
            self.conflicts.append({**conflict, "detected_at": found.isoformat()})

    def send(self, topic: str, key: bytes, value: bytes) -> None:
        """Write one record to this hub's Kafka and wait for it."""
        errors: list[Any] = []
        self._producer.produce(topic, value, key,
                               on_delivery=lambda err, _m: errors.append(err) if err else None)
        if self._producer.flush(30) or errors:
            # raised into the feed, which reads the upstream again from its start
            raise RuntimeError(f"this hub's Kafka did not take {topic}: {errors[:1]}")

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {"upstream": self.origin, "ready": self.ready, "counts": dict(self.counts),
                    "conflicts": list(self.conflicts)}

    def stop(self, timeout: float = 5.0) -> None:
        super().stop(timeout)
        self._producer.flush(5)


class DictionaryDownlink(Downlink[MapFeed]):
    """Follows the upstream's code maps and applies them to this hub's (see the module)."""

    topic = MAPS_TOPIC
    what = "upstream code maps"
    kind = "code-map"

    def apply(self, record: Mapping[str, Any]) -> bool:
        entry = MapEntry.from_record(record)
        self.local_ready()
        held = self._local.store.get(entry.key)
        outcome = reconcile(entry, held, self.origin)
        self.count(outcome)
        if outcome == "apply":
            mine = replace(entry, origin=self.origin)
            self.send(MAPS_TOPIC, mine.topic_key,
                      wire.encode(self._ids.for_topic(MAPS_TOPIC), mine.to_record()))
            self._local.store.put(mine)  # at once: the next upstream record sees it
            return True
        if outcome == "conflict":
            assert held is not None  # noqa: S101 - a conflict needs a local entry
            self.report(entry.topic_key.decode(), local_target=_target(held),
                        local_version=held.map_version, upstream_target=_target(entry),
                        upstream_version=entry.map_version)
        return False
