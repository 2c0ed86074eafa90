"""The stream worker: events in, linked standard events out.

The hot path, the partitioned stage, runs on librdkafka in a thread of the
worker (:mod:`streams.partitioned`): it reads ``hutong.events.*`` in batches;
an event whose patient the worker's copy of ``hutong.empi.links`` knows
(:mod:`streams.linkview`), with the identity last sent to the resolver, is
stamped with its EMPI id and written to ``hutong.std.<type>`` at once; any
other goes to ``hutong.empi.resolve`` (:mod:`streams.empi.routing`).

Around it, Faust agents, thin around pure steps (ADR 0004):

``empi-decisions``
    forwards reviewers' decisions from ``hutong.empi.decisions`` onto
    ``hutong.empi.resolve``, so the resolver reads news and decisions in one
    order, the same again after a crash.
``empi-resolve``
    the one resolver: reads ``hutong.empi.resolve`` (one partition, so one
    worker owns it), links or decides (:mod:`streams.empi.resolution`), then writes, in this
    order, the stamped events to ``hutong.std.*``, the link changes to
    ``hutong.empi.links``, the review pairs to ``hutong.empi.review``, the
    golden records of the EMPI ids that changed to ``hutong.empi.golden``, and
    last its state to the ``empi-index`` table. A crash anywhere before the
    offsets are committed replays the batch; the index decides the same way
    again, and every sink collapses repeats. Its records go out through
    librdkafka a batch at a time (:class:`~producers.kafka.BatchProducer`), each
    step confirmed before the next, as the partitioned stage writes; a Faust send
    a record cost several times as much. The table is Faust's.
``critical-values``, ``alert-tracker``
    the alert stage (:mod:`streams.alerting`).

Each batch's sends are confirmed by Kafka before Faust may commit its offsets
(at least once); anything that cannot be decoded or applied goes to
``hutong.dlq`` with stage ``stream`` and the reason. Tables are RocksDB
(rocksdict) with compacted changelogs, so a restarted worker recovers them.

Tansu needs short group timeouts: with Kafka's defaults a new member waits
about 23 s for its first assignment, with a 6 s session about 3 s.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import weakref
from collections.abc import Awaitable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faust
import faust.streams as faust_streams
from faust.tables import recovery as faust_recovery
from faust.transport.drivers import aiokafka as faust_aiokafka
from prometheus_client import CollectorRegistry

from hutong.config import Settings
from hutong.errors import HutongError, SchemaError, WireFormatError
from hutong.federation.rulefiles import RuleFileFeed
from hutong.keys import pseudonym_key
from hutong.metrics import StageMetrics
from hutong.metrics.labels import oldest_age, stream_stage
from hutong.offsets import watermarks
from hutong.registry.practitioners import PractitionerFeed
from producers.kafka import BatchProducer, OutRecord
from producers.records import DLQ_TOPIC, consumed_dead_letter, dead_letter_headers
from schemas import wire
from schemas.registry import EMBEDDED, Resolver
from streams.alerting import add_alerting, candidate_check
from streams.alerts.live import LiveRuleBook
from streams.empi.linker import Thresholds
from streams.empi.resolution import IdentityResolver, Resolution, ResolverConfig
from streams.kafka_auth import faust_credentials
from streams.linkview import LINKS_TOPIC, LinkView
from streams.mapfeed import MapFeed
from streams.output import StandardOutput
from streams.partitioned import PartitionedStage
from streams.topology import (
    INDEX_TABLE,
    INPUT_TOPICS,
    RESOLVE_TOPIC,
    STREAMS_GROUP,
)

__all__ = ["STREAMS_GROUP", "create_app"]

log = logging.getLogger(__name__)

_BATCH = 500
_BATCH_WITHIN_S = 0.05
_REVIEW_TOPIC = "hutong.empi.review"
_DECISIONS_TOPIC = "hutong.empi.decisions"
_GOLDEN_TOPIC = "hutong.empi.golden"
#: How long the first batch waits for the code maps and practitioners that existed at start.
_MAPS_READY_S = 30.0


#: How long a fetch may wait for data. Faust fixes it at 1.5 s, and Tansu answers a
#: fetch only when that runs out (it does not wake on new data): every hop of the
#: pipeline would wait up to 1.5 s. Measured on Tansu: 1.3 s a hop at 1.5 s, 8 ms at 50 ms.
FETCH_MAX_WAIT_MS = 50
_create_worker_consumer = faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer


def _quick_fetching_consumer(self: Any, transport: Any) -> Any:
    consumer = _create_worker_consumer(self, transport)
    consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read when the consumer starts
    return consumer


faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer = (  # type: ignore[method-assign]
    _quick_fetching_consumer)


async def _true_highwaters(self: Any, consumer: Any, tps: Any, destination: Any,
                           title: str) -> None:
    """Faust's table recovery reads each changelog to its high watermark, from the
    broker's ListOffsets; the embedded broker can answer short of the end there, and
    Faust then either stops its recovery early or, finding its own files ahead, refuses
    to start ("persisted offset ... is higher than the last offset"): measured after a
    kill -9 of a worker's parent. The watermarks read to the end (hutong.offsets)."""
    marks = await asyncio.to_thread(watermarks, self.app.hutong_kafka_config,
                                    [(tp.topic, tp.partition) for tp in tps])
    destination.clear()
    # Faust's own convention: the offset of the last record (-1 for none)
    destination.update({tp: marks[(tp.topic, tp.partition)][1] - 1 for tp in tps})


faust_recovery.Recovery._build_highwaters = _true_highwaters  # type: ignore[method-assign]


def _faust_kafka_settings(settings: Settings) -> dict[str, Any]:
    return {
        "broker": f"kafka://{settings.bootstrap}",
        "broker_session_timeout": 6.0,
        "broker_heartbeat_interval": 1.0,
        "broker_rebalance_timeout": 10.0,
        "producer_acks": -1,
        "consumer_auto_offset_reset": "earliest",
        "broker_credentials": faust_credentials(settings.kafka_client_config()),
    }


def resolver_config(settings: Settings) -> ResolverConfig:
    """The EMPI resolver's settings (``HUTONG_EMPI_*``)."""
    return ResolverConfig(
        thresholds=Thresholds(settings.empi_link_threshold, settings.empi_review_threshold),
        train_from=settings.empi_train_from, model_overrides=settings.empi_model,
        trust=settings.empi_trust, id_secret=pseudonym_key(settings))


def worker_datadir(settings: Settings, worker: int) -> Path:
    """Each worker's own RocksDB files (two workers cannot share one)."""
    return settings.data_dir / "streams" / f"worker-{worker}"


def create_app(settings: Settings, ids: Resolver = EMBEDDED, *, worker: int = 0,
               stages: StageMetrics | None = None) -> faust.App:
    """Build the Faust app with its agents and tables; nothing connects until it runs.

    ``stages`` counts what each stage reads and hands on; started by a hub process, the
    values reach its ``/metrics`` through prometheus_client's files (ADR 0007).
    """
    metered = stages if stages is not None else StageMetrics(CollectorRegistry())
    metered.declare(*sorted({stream_stage(topic) for topic in INPUT_TOPICS}))
    datadir = worker_datadir(settings, worker)
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        STREAMS_GROUP,
        value_serializer="raw",
        key_serializer="raw",
        web_enabled=False,
        topic_allow_declare=False,
        topic_disable_leader=True,
        store="rocksdb://",
        datadir=str(datadir),
        **_faust_kafka_settings(settings),
    )
    app.hutong_kafka_config = settings.kafka_client_config()  # type: ignore[attr-defined]
    client_config = settings.kafka_client_config()
    maps = MapFeed(client_config, ids)
    practitioners = PractitionerFeed(client_config, ids)
    rule_files = RuleFileFeed(client_config, ids)
    link_view = LinkView(client_config, datadir / "links", ids)
    book = LiveRuleBook(rule_files.lists)  # the default until the topic is read
    topic = _Topics(app, StandardOutput(maps, practitioners, ids, candidate_check(book)))
    feeds = (maps, practitioners, rule_files, link_view)
    for feed in feeds:
        feed.start()  # reading them while Faust joins its group

    def feeds_ready() -> None:
        """Before a batch: what the feeds held at start is read (waited for once), and a
        critical-value list changed since the last batch is in force for this one."""
        for feed in feeds:
            if not feed.ready and not feed.wait_ready(_MAPS_READY_S):
                log.warning("the %s were not all read within %.0f s; going on with those read "
                            "so far", feed.what, _MAPS_READY_S)
        book.refresh()

    async def _maps_ready() -> None:
        if all(feed.ready for feed in feeds):
            book.refresh()  # cheap when nothing changed: no thread for it
        else:
            await asyncio.to_thread(feeds_ready)

    # Each stage its own output: its own counts of unmapped codes and unknown clinicians.
    stage = PartitionedStage(client_config, ids, link_view,
                             StandardOutput(maps, practitioners, ids, candidate_check(book)),
                             metered, ready=feeds_ready)

    @app.task  # type: ignore[untyped-decorator]
    async def start_partitioned_stage() -> None:
        stage.start()

    #: The resolver's writer. ``stopping`` is set at shutdown, once Faust has let the batch
    #: in hand finish. A batch that Kafka does not confirm (it retries while the broker is
    #: away) holds Faust's shutdown until the hub's grace period ends and it kills the
    #: worker; its offsets are not committed, so it is read again.
    resolver_out = BatchProducer(client_config)
    stopping = threading.Event()

    @app.on_before_shutdown.connect
    async def _stop_partitioned_stage(*_: Any, **__: Any) -> None:
        await asyncio.to_thread(stage.stop)
        await asyncio.to_thread(link_view.close)
        stopping.set()
        await asyncio.to_thread(resolver_out.close)

    state = app.Table(INDEX_TABLE, partitions=1, key_type=bytes, value_type=bytes)
    config = resolver_config(settings)
    resolver: list[IdentityResolver] = []  # built from the table after recovery

    @app.on_partitions_revoked.connect
    async def _forget(_: Any, /, *args: Any, signal: Any = None, **__: Any) -> None:
        revoked = args[0] if args else ()
        if any(tp.topic == RESOLVE_TOPIC for tp in revoked):
            resolver.clear()  # whoever owns the index next rebuilds it from the table

    @app.agent(topic.decisions, name="empi-decisions")
    async def forward_decisions(stream: Any) -> None:
        """Decisions join the identity news on one topic, so that the resolver reads both
        in one order, the same order again after a crash."""
        async for batch in stream.take_events(_BATCH, within=_BATCH_WITHIN_S):
            await _durably(_forward(batch))

    async def _forward(batch: list[Any]) -> None:
        await asyncio.gather(*[await topic.resolve.send(key=event.message.key,
                                                         value=event.value)
                               for event in batch])

    @app.agent(topic.resolve, name="empi-resolve")
    async def resolve_agent(stream: Any) -> None:
        async for batch in stream.take_events(_BATCH, within=_BATCH_WITHIN_S):
            await _durably(_resolve(batch))

    async def _resolve(batch: list[Any]) -> None:
        await _maps_ready()
        if not resolver:
            resolver.append(IdentityResolver.restored(
                ((key.decode(), value) for key, value in state.items()), config))
            log.info("EMPI index loaded: %d records", len(resolver[0].index.records))
        index = resolver[0]
        first: list[OutRecord] = []  # the stamped events, their counts, the dead letters
        results: list[Resolution] = []
        linked_now: list[Any] = []
        latest = None
        for event in batch:
            record = _decoded(event, first)
            if record is None:
                continue
            try:
                if "decision_id" in record:  # a reviewer's, forwarded from the decisions
                    result = index.decide(record)
                    latest = record["decided_at"]
                else:
                    result = index.resolve(record)
                    latest = record["received_at"]
                    first += topic.output.event(result.event or {})
                    linked_now.append(latest)
            except (KeyError, TypeError, ValueError) as exc:  # a record the step cannot use
                reason = f"internal error in empi-resolve ({type(exc).__name__})"
                log.error("event at %s[%d]@%d failed: %s", event.message.topic,
                          event.message.partition, event.message.offset, reason, exc_info=True)
                first.append(_dead_letter_record(ids, event, reason))
                continue
            if result.refused is not None:
                log.warning("EMPI decision at %s[%d]@%d not applied: %s", event.message.topic,
                            event.message.partition, event.message.offset, result.refused)
                first.append(_dead_letter_record(ids, event, result.refused))
            results.append(result)
        await _delivered(first + topic.output.counts())  # a link never precedes its event
        letters = sum(1 for record in first if record.topic == DLQ_TOPIC)
        if letters:  # counted once Kafka has them: a batch read again counts them again
            metered.dead_letters.labels(stream_stage(RESOLVE_TOPIC)).inc(letters)
        await _delivered(topic.index_changes(results))
        changes = [change for result in results for change in result.changes]
        if latest is not None:
            await _delivered(topic.golden(index.golden_records(changes, latest)))
        _as_current(batch[-1])  # the table's partition (0) is taken from the current event
        for key, value in index.take_entries().items():
            if value is None:
                state.pop(key.encode(), None)
            else:
                state[key.encode()] = value
        await app.producer.flush()
        _passed(0, linked_now)

    def _passed(read: int, linked_now: list[Any]) -> None:
        """EMPI read ``read`` events and linked these; translation ran on each as it was
        stamped (`StandardOutput.event`), so both stages hand on the same events at once."""
        age = oldest_age(linked_now, datetime.now(UTC))
        metered.passed("empi", read, len(linked_now), age)
        metered.passed("translate", len(linked_now), len(linked_now), age)

    async def _delivered(records: list[OutRecord]) -> None:
        """Write ``records`` and wait until Kafka has every one (raises when the worker
        stops first: its batch is read again)."""
        if records and not await asyncio.to_thread(resolver_out.deliver, records, stopping):
            raise HutongError("stopping before Kafka confirmed the resolver's batch")

    async def letter(event: Any, reason: str) -> Any:
        """Send the dead letter of ``event`` and count it under its stage."""
        metered.dead_letters.labels(stream_stage(event.message.topic)).inc()
        record = _dead_letter_record(ids, event, reason)
        return await topic.dlq.send(key=record.key, value=record.value,
                                    headers=list(record.headers))

    def _decoded(event: Any, records: list[OutRecord]) -> dict[str, Any] | None:
        """The event's record, or None with its dead letter added to ``records``."""
        try:
            _, record = wire.decode(event.value, ids.by_id)
            return record
        except (WireFormatError, SchemaError) as exc:
            records.append(_dead_letter_record(ids, event, str(exc)))
        return None

    topic.ids = ids
    add_alerting(app, settings, ids, book, durably=_durably, as_current=_as_current,
                 dead_letter=letter, stages=metered)
    watch = SkipWatch()

    @app.timer(interval=RULES_CHECK_S)  # type: ignore[untyped-decorator]
    async def reload_rules() -> None:
        """A list changed (a steward's folder, the platform above) while no result came:
        in force for the alert stage too."""
        await asyncio.to_thread(book.refresh)

    @app.timer(interval=SKIP_CHECK_S)  # type: ignore[untyped-decorator]
    async def skipped_events() -> None:
        consumer = app.consumer
        stuck = watch.stuck(getattr(consumer, "_acked", {}),
                            getattr(consumer, "_committed_offset", {}), _monotonic())
        if stuck:
            log.critical("events before offset(s) %s were never handed to the stream although "
                         "later ones were: exiting so that they are read again from the "
                         "committed offsets (the sinks drop what they already hold)", stuck)
            logging.shutdown()
            os._exit(71)

    return app


#: How often the worker looks at its critical-value rule folder for changes.
RULES_CHECK_S = 5.0
#: How often the worker looks for events it skipped, and how long a hole may last.
SKIP_CHECK_S = 10.0
SKIP_PATIENCE_S = 30.0


def _monotonic() -> float:
    return asyncio.get_running_loop().time()


class SkipWatch:
    """Finds events the Faust consumer skipped without a word.

    Seen under a broker that froze: a few events of a partition were never handed to
    the agents while the ones after them were processed; Faust then commits nothing
    past the hole (its acked offsets start above the committed one) and the events
    would be read again only after a restart. A hole at the head of a partition's acked
    offsets is normal while a batch is in flight; one that lasts ``patience`` seconds
    means skipped events, and the worker restarts to read them again.
    """

    def __init__(self, patience: float = SKIP_PATIENCE_S) -> None:
        self.patience = patience
        self._since: dict[Any, float] = {}

    def stuck(self, acked: Any, committed: Any, now: float) -> list[str]:
        holes = set()
        for tp, offsets in list(acked.items()):
            done = committed.get(tp)
            if offsets and done is not None and min(offsets) - done > 1:
                holes.add(tp)
        for tp in list(self._since):
            if tp not in holes:
                del self._since[tp]
        for tp in holes:
            self._since.setdefault(tp, now)
        return sorted(f"{tp.topic}[{tp.partition}]@{committed.get(tp)}"
                      for tp, since in self._since.items() if now - since >= self.patience)


class _Topics:
    """The app's topics, and how records are put on them."""

    def __init__(self, app: faust.App, output: StandardOutput) -> None:
        def named(*names: str) -> Any:
            return app.topic(*names, value_type=bytes, key_type=bytes)

        self.ids: Resolver = EMBEDDED
        #: How the resolver's linked events are translated and written (the std topics,
        #: the alert stage's candidates, the counts of unmapped codes and clinicians).
        self.output = output
        self.resolve = named(RESOLVE_TOPIC)
        self.decisions = named(_DECISIONS_TOPIC)
        self.dlq = named(DLQ_TOPIC)

    def index_changes(self, results: list[Resolution]) -> list[OutRecord]:
        """The link changes and review pairs of a batch, in order."""
        records: list[OutRecord] = []
        links, review = self.ids.for_topic(LINKS_TOPIC), self.ids.for_topic(_REVIEW_TOPIC)
        for result in results:
            for change in result.changes:
                key = f"{change.facility_id}|{change.source_patient_id}".encode()
                records.append(OutRecord(LINKS_TOPIC, key,
                                         wire.encode(links, change.to_event())))
            for pair in result.reviews:
                records.append(OutRecord(_REVIEW_TOPIC, pair.pair_id.encode(),
                                         wire.encode(review, pair.to_event())))
        return records

    def golden(self, records: dict[str, dict[str, Any] | None]) -> list[OutRecord]:
        """Golden records (None: a tombstone for a merged-away id)."""
        schema = self.ids.for_topic(_GOLDEN_TOPIC)
        return [OutRecord(_GOLDEN_TOPIC, empi_id.encode(),
                          None if record is None else wire.encode(schema, record))
                for empi_id, record in records.items()]


def _as_current(event: Any) -> None:
    """Make ``event`` Faust's current event in this task.

    A Faust table write goes to the partition of the current event; inside a
    ``take_events`` batch Faust does not always set one, so the resolver names it.
    """
    faust_streams._current_event.set(weakref.ref(event))


async def _durably(work: Awaitable[None]) -> None:
    """Run a batch's sends to Kafka's confirmation, or stop the worker before Faust acks it.

    ``take_events`` acknowledges a batch when the loop moves on, even when the body
    raised; so any failure to send or to have a send confirmed exits at once. The hub
    restarts the worker, which reads the batch again (the sinks are idempotent).
    """
    try:
        await work
    except Exception:
        log.critical("Kafka did not confirm a batch of stream output; exiting so that "
                     "its offsets are not committed", exc_info=True)
        logging.shutdown()
        os._exit(70)


def _dead_letter_record(ids: Resolver, event: Any, reason: str) -> OutRecord:
    msg = event.message
    letter = consumed_dead_letter("stream", msg.topic, msg.partition, msg.offset, msg.key,
                                  event.value or b"", reason)
    log.warning("event at %s not used: %s", letter["location"], reason)
    return OutRecord(DLQ_TOPIC, msg.key, wire.encode(ids.for_topic(DLQ_TOPIC), letter),
                     dead_letter_headers(letter))
