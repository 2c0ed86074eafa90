"""The code maps a stream worker translates with: ``hutong.terminology.maps``, followed live.

Every worker needs every map (an event of any partition may name any code), so
each reads the whole compacted topic, from the beginning, into its own
:class:`~streams.terminology.maps.MapStore`, in a thread of its own, and keeps
reading: a map published later (a file dropped in the terminology folder, an
API upload) applies to the next event, without a restart.

:meth:`MapFeed.wait_ready` returns once the maps that existed when the worker
started have been read, so the first events are not translated with half the
maps and wrongly marked unmapped. No consumer group: nothing is committed, a
restarted worker reads the topic again (it is compacted: one record per map).
"""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from hutong.errors import SchemaError, WireFormatError
from schemas import wire
from schemas.registry import EMBEDDED, Resolver
from streams.terminology.maps import MapEntry, MapStore

__all__ = ["MAPS_TOPIC", "MapFeed"]

log = logging.getLogger(__name__)

MAPS_TOPIC = "hutong.terminology.maps"


class MapFeed:
    """A MapStore kept up to date from the maps topic by a daemon thread."""

    def __init__(self, client_config: dict[str, Any], ids: Resolver = EMBEDDED) -> None:
        self.store = MapStore()
        self._ids = ids
        self._config = {**client_config, "group.id": f"hutong-maps-{uuid.uuid4()}",
                        "enable.auto.commit": False, "auto.offset.reset": "earliest",
                        "fetch.wait.max.ms": 50}  # Tansu: see sinks/runner.py
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="map-feed", daemon=True)
        self.applied = 0
        self._started = False

    def start(self) -> None:
        """Start following the topic (once; later calls do nothing)."""
        if not self._thread.is_alive() and not self._started:
            self._started = True
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def wait_ready(self, timeout: float) -> bool:
        """Whether the maps that existed at start are loaded (False on timeout)."""
        return self._ready.wait(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            consumer = Consumer(self._config)
            try:
                self._follow(consumer)
            except Exception:  # the broker away, a bug: start over, never stop following
                log.exception("the code-map feed failed; reading the topic again in 5 s")
                self._stop.wait(5.0)
            finally:
                consumer.close()

    def _follow(self, consumer: Consumer) -> None:
        ends = self._assign(consumer)
        while not self._stop.is_set():
            for msg in consumer.consume(1000, timeout=0.5):
                if msg.error():
                    continue
                self._apply(msg.value(), msg.key())
                where = (msg.topic() or "", msg.partition() or 0)
                if where in ends and (msg.offset() or 0) + 1 >= ends[where]:
                    del ends[where]
            if not ends and not self._ready.is_set():
                log.info("code maps loaded: %d in force", len(self.store))
                self._ready.set()

    def _assign(self, consumer: Consumer) -> dict[tuple[str, int], int]:
        metadata = consumer.list_topics(MAPS_TOPIC, timeout=15)
        partitions = list(metadata.topics[MAPS_TOPIC].partitions)
        ends: dict[tuple[str, int], int] = {}
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(MAPS_TOPIC, p), timeout=15)
            if high > low:
                ends[(MAPS_TOPIC, p)] = high
        consumer.assign([TopicPartition(MAPS_TOPIC, p, OFFSET_BEGINNING) for p in partitions])
        if not ends:
            self._ready.set()
        return ends

    def _apply(self, value: bytes | None, key: bytes | None) -> None:
        if value is None:  # hutong withdraws a map with deleted=true, never a bare tombstone
            return
        try:
            _, record = wire.decode(value, self._ids.by_id)
            entry = MapEntry.from_record(record)
        except (WireFormatError, SchemaError, KeyError, TypeError, ValueError) as exc:
            log.warning("a code map record (key %r) cannot be read: %s", key, exc)
            return
        if self.store.put(entry):
            self.applied += 1
