"""``hutong replay``: read what a facility sent again, from the raw topics, and re-emit its events.

After a code map is added, the events that went through with local codes can be
translated again: the raw envelopes on ``hutong.raw.hl7v2``, ``hutong.raw.cda``
and ``hutong.raw.json`` (kept 7 days) are read for one facility and a time
window, each message is adapted again exactly as at intake (same facility
profile, same receipt time, so the same event ids), and the events are written
to ``hutong.events.*``. The stream worker translates them with today's maps;
their ``map_version`` differs, so the warehouse replaces the rows instead of
adding new ones. Nothing is sent to the raw topics or answered to anyone.

The read stops at the end each partition had when the replay started, so a
replay of a busy facility ends. A message that failed at intake fails again
and is counted, not re-sent (it is a dead letter already).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from hutong.errors import DeliveryError, SchemaError, WireFormatError
from hutong.offsets import watermarks
from producers.cda.adapter import adapt_cda
from producers.hl7v2.adapter import Adapted, Arrival, ProfileLookup, adapt
from producers.hl7v2.patient import DEFAULT_PROFILE, PatientProfile
from producers.json_events import adapt_json
from producers.kafka import producer_config
from producers.records import event_key
from schemas import wire
from schemas.registry import EMBEDDED, Resolver

__all__ = ["RAW_TOPICS", "ReplayReport", "Window", "readapt", "replay"]

RAW_TOPICS = ("hutong.raw.hl7v2", "hutong.raw.cda", "hutong.raw.json")
_POLL_S = 0.5
_PROGRESS_EVERY_S = 5.0


@dataclass(frozen=True, slots=True)
class Window:
    """Which messages to replay: one facility, received within [since, until)."""

    facility_id: str
    since: datetime | None = None
    until: datetime | None = None

    def holds(self, envelope: dict[str, Any]) -> bool:
        received: datetime = envelope["received_at"]
        return (envelope["facility_id"] == self.facility_id
                and (self.since is None or received >= self.since)
                and (self.until is None or received < self.until))


@dataclass(slots=True)
class ReplayReport:
    """What a replay read and wrote."""

    read: int = 0
    matched: int = 0
    events: int = 0
    failed: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def readapt(envelope: dict[str, Any], profile_for: ProfileLookup) -> Adapted:
    """Adapt one raw envelope again, as the intake did (pure)."""
    arrival = Arrival(envelope["payload"], envelope["transport"], envelope["received_at"],
                      envelope.get("remote_address"))
    content = envelope["content_type"]
    if content == "hl7v2":
        return adapt(arrival, profile_for)
    adapted = Adapted(arrival=arrival, facility_id=envelope["facility_id"])
    if content == "cda":
        return adapt_cda(adapted)
    return adapt_json(adapted)


def _default_profile(facility_id: str) -> PatientProfile:
    return DEFAULT_PROFILE


def replay(client_config: dict[str, Any], window: Window, *,
           profile_for: ProfileLookup = _default_profile, ids: Resolver = EMBEDDED,
           progress: Callable[[ReplayReport], None] | None = None,
           timeout_s: float = 600.0) -> ReplayReport:
    """Re-emit the events of ``window`` from the raw topics; see the module."""
    report = ReplayReport()
    started = time.monotonic()
    consumer = Consumer({**client_config, "group.id": f"hutong-replay-{uuid.uuid4()}",
                         "enable.auto.commit": False, "isolation.level": "read_committed",
                         "auto.offset.reset": "earliest"})
    producer = Producer(producer_config(client_config))
    failures: list[str] = []
    try:
        remaining = _assign(consumer, window, client_config)
        last_progress = started
        while remaining:
            if time.monotonic() - started > timeout_s:
                raise DeliveryError(f"replay did not reach the end of the raw topics within "
                                    f"{timeout_s:.0f} s")
            for msg in consumer.consume(500, timeout=_POLL_S):
                if msg.error():
                    continue
                where = (msg.topic() or "", msg.partition() or 0)
                offset = msg.offset() or 0
                if where not in remaining or offset >= remaining[where]:
                    continue
                if offset + 1 >= remaining[where]:
                    del remaining[where]
                report.read += 1
                _one(msg.value() or b"", window, profile_for, ids, producer, report, failures)
            producer.poll(0)
            if progress is not None and time.monotonic() - last_progress > _PROGRESS_EVERY_S:
                progress(report)
                last_progress = time.monotonic()
        if producer.flush(30) != 0 or failures:
            raise DeliveryError(f"Kafka did not confirm {len(failures) or 'some'} replayed "
                                "events; run the replay again (it is idempotent)")
    finally:
        consumer.close()
    report.seconds = time.monotonic() - started
    return report


def _assign(consumer: Consumer, window: Window,
            client_config: dict[str, Any]) -> dict[tuple[str, int], int]:
    """Assign every raw partition from the window's start; the end offsets to read to."""
    metadata = consumer.list_topics(timeout=15)
    partitions = [TopicPartition(topic, p) for topic in RAW_TOPICS
                  if topic in metadata.topics for p in metadata.topics[topic].partitions]
    ends = {where: high for where, (low, high) in watermarks(
        client_config, [(tp.topic, tp.partition) for tp in partitions]).items() if high > low}
    starts = [TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING) for tp in partitions]
    if window.since is not None:
        at_ms = int(window.since.timestamp() * 1000)
        wanted = [TopicPartition(tp.topic, tp.partition, at_ms) for tp in partitions]
        found = consumer.offsets_for_times(wanted, timeout=15)
        starts = [TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0
                                 else ends.get((tp.topic, tp.partition), 0)) for tp in found]
    consumer.assign(starts)
    for tp in starts:  # nothing at or after the start: that partition is done
        end = ends.get((tp.topic, tp.partition))
        if end is not None and tp.offset >= end:
            del ends[(tp.topic, tp.partition)]
    return ends


def _one(value: bytes, window: Window, profile_for: ProfileLookup, ids: Resolver,
         producer: Producer, report: ReplayReport, failures: list[str]) -> None:
    try:
        _, envelope = wire.decode(value, ids.by_id)
    except (WireFormatError, SchemaError):
        report.failed += 1
        return
    if not window.holds(envelope):
        return
    report.matched += 1
    adapted = readapt(envelope, profile_for)
    if adapted.error is not None or not adapted.events:
        report.failed += 1
        return
    def failed(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    for event in adapted.events:
        topic = f"hutong.events.{event['event_type']}"
        value = wire.encode(ids.for_topic(topic), event)
        while True:
            try:
                producer.produce(topic, key=event_key(event), value=value, on_delivery=failed)
                break
            except BufferError:  # librdkafka's queue is full: let it drain
                producer.poll(0.1)
        report.events += 1
        report.by_type[event["event_type"]] = report.by_type.get(event["event_type"], 0) + 1
