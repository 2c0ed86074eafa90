"""A compacted topic read whole and followed live, in a thread of its own.

Code maps (:mod:`streams.mapfeed`) and the facility registry
(:mod:`hutong.registry.facilities`) are small, keyed, and needed whole by every
process that uses them: each process reads the topic from the beginning, with no
consumer group and nothing committed (a restart reads it again; compaction keeps
one record per key), and keeps reading, so a change published later applies without
a restart: within :attr:`TopicFeed.settled_wait_ms` on the embedded broker, which
answers a fetch only when its wait runs out, at once on Kafka.

:meth:`TopicFeed.wait_ready` returns once what the topic held at start has been
read, so a process does not act on half of it.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from hutong.errors import SchemaError, WireFormatError
from schemas import wire
from schemas.registry import EMBEDDED, Resolver

__all__ = ["TopicFeed"]

log = logging.getLogger(__name__)

#: How long one read waits: librdkafka returns early only for a full batch, so this is
#: also how long the end of the topic takes to notice, and a stop.
_POLL_S = 0.1
#: How long the broker may hold a fetch while the topic is read whole: the embedded one
#: answers only when the wait runs out, so each round trip takes this long.
_READING_WAIT_MS = 50


class TopicFeed:
    """Follows ``topic``; a subclass says what a record does (:meth:`apply`)."""

    topic: ClassVar[str]
    #: What the topic holds, for the log ("code maps").
    what: ClassVar[str]
    #: How long the broker may hold a fetch once the topic is read whole, so how late a
    #: change may apply (up to about this). Tansu answers a fetch only when its wait runs
    #: out, full or empty, and each fetch costs it CPU: a feed fetching every 50 ms held
    #: about 2 % of a core, and a hub has about ten (docs/performance.md). A feed on the
    #: hot path says less.
    settled_wait_ms: ClassVar[int] = 500

    def __init__(self, client_config: dict[str, Any], ids: Resolver = EMBEDDED) -> None:
        self._ids = ids
        # The end of each partition is found by reading to it (the end-of-partition event):
        # the embedded broker's ListOffsets can answer short of it (hutong.offsets).
        self._config = {**client_config, "group.id": f"hutong-feed-{uuid.uuid4()}",
                        "enable.auto.commit": False, "auto.offset.reset": "earliest",
                        "enable.partition.eof": True}
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"feed-{self.topic}",
                                        daemon=True)
        self._started = False
        #: Records that changed something.
        self.applied = 0

    def apply(self, record: Mapping[str, Any]) -> bool:
        """Take one decoded record; whether it changed anything."""
        raise NotImplementedError

    def remove(self, key: bytes | None) -> bool:
        """Take a tombstone (a null value) for ``key``; whether it changed anything.
        Hutong withdraws with a field of the record; by default a tombstone does nothing."""
        return False

    def loaded(self) -> str:
        """What is in force, for the log line once the topic is read."""
        return f"{self.applied} records"

    def start_offsets(self, partitions: list[int], cluster_id: str | None) -> dict[int, int]:
        """Where to start reading each partition of the topic on cluster ``cluster_id``:
        by default the beginning (a feed that keeps what it read, and where, says
        otherwise)."""
        return dict.fromkeys(partitions, OFFSET_BEGINNING)

    def read_to(self, partition: int, offset: int) -> None:
        """The record at ``offset`` of ``partition`` is taken (a hook; nothing by default)."""

    def start(self) -> None:
        """Start following the topic (once; later calls do nothing)."""
        if not self._started:
            self._started = True
            self._thread.start()

    def request_stop(self) -> None:
        """Ask the feed to stop at its next read, without waiting (:meth:`stop` waits)."""
        self._stop.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._started:
            self._thread.join(timeout)

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def wait_ready(self, timeout: float) -> bool:
        """Whether what the topic held at start is read (False on timeout)."""
        return self._ready.wait(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                # Read the topic whole with short fetches; then, if the feed settles on
                # longer ones, follow it with them from where the first consumer stopped.
                settles = self.settled_wait_ms != _READING_WAIT_MS
                resume = self._follow_with(_READING_WAIT_MS, None, settle=settles)
                if resume is not None:
                    self._follow_with(self.settled_wait_ms, resume, settle=False)
            except Exception:  # the broker away, a bug: start over, never stop following
                log.exception("the %s feed failed; reading %s again in 5 s", self.what,
                              self.topic)
                self._stop.wait(5.0)

    def _follow_with(self, wait_ms: int, resume: dict[int, int] | None, *,
                     settle: bool) -> dict[int, int] | None:
        """:meth:`_follow` with a consumer of its own whose fetches wait ``wait_ms``."""
        consumer = Consumer({**self._config, "fetch.wait.max.ms": wait_ms})
        try:
            return self._follow(consumer, resume, settle=settle)
        finally:
            consumer.close()

    def _follow(self, consumer: Consumer, resume: dict[int, int] | None, *,
                settle: bool) -> dict[int, int] | None:
        """Read from ``resume`` (else :meth:`start_offsets`) until stopped, and return
        None; with ``settle``, only to the end of every partition, and return the offset
        to read next in each (its start for a partition nothing was read from)."""
        metadata = consumer.list_topics(self.topic, timeout=15)
        partitions = list(metadata.topics[self.topic].partitions)
        unread = set(partitions)  # until each partition's end-of-partition event
        starts = resume if resume is not None and set(resume) == set(partitions) \
            else self.start_offsets(partitions, metadata.cluster_id)
        assigned = [TopicPartition(self.topic, p, starts[p]) for p in partitions]
        consumer.assign(assigned)
        while not self._stop.is_set():
            for msg in consumer.consume(1000, timeout=_POLL_S):
                error = msg.error()
                if error is None:
                    self._take(msg.value(), msg.key())
                    self.read_to(msg.partition() or 0, msg.offset() or 0)
                elif error.code() == KafkaError._PARTITION_EOF:
                    unread.discard(msg.partition())
            if not unread and not self._ready.is_set():
                log.info("%s loaded: %s", self.what, self.loaded())
                self._ready.set()
            if not unread and settle:
                # A partition nothing was read from has no position yet: its start holds.
                return {tp.partition: tp.offset if tp.offset >= 0 else starts[tp.partition]
                        for tp in consumer.position(assigned)}
        return None

    def _take(self, value: bytes | None, key: bytes | None) -> None:
        if value is None:
            if self.remove(key):
                self.applied += 1
            return
        try:
            _, record = wire.decode(value, self._ids.by_id)
            if self.apply(record):
                self.applied += 1
        except (WireFormatError, SchemaError, KeyError, TypeError, ValueError) as exc:
            log.warning("a %s record (key %r) cannot be read: %s", self.what, key,
                        type(exc).__name__ if not isinstance(exc, SchemaError | WireFormatError)
                        else exc)
