"""The whole hub on one machine: what ``hutong up`` runs.

Start order: data-dir lock and port checks (so a second hub says what is in
the way before it touches anything), the embedded broker (unless an external
cluster is named), topics, schema registration, the warehouse and its
migrations, the warehouse sink, the document store and its sink, the stream
worker process, the Kafka producer, the intake (the connectors' and, for dead-letter
retries, the API's), the MLLP connector, the HTTP API and the
ClickHouse HTTP interface of the embedded warehouse. ``stop`` undoes it in
reverse; child processes also die with the hub if it is killed (PR_SET_PDEATHSIG).

The ``components`` setting chooses which of these one process runs
(`hutong.components`): a cluster runs connectors, streams, sinks and the API in
separate Deployments against external Kafka, ClickHouse and PostgreSQL. Every
process serves ``/healthz`` (its own components only) and ``/metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import uvicorn
from pydantic import SecretStr

from connectors.batch import BatchWatcher
from connectors.facilities import Facility, FacilityRegistry
from connectors.mllp.server import MLLPServer
from connectors.tls import http_server_context, server_context
from hutong.api.app import create_api
from hutong.api.clickhouse_http import create_clickhouse_http
from hutong.audit import AuditLog
from hutong.config import URL_FIELDS, Settings
from hutong.errors import ConfigError, DocumentStoreError, StackError
from hutong.federation.config import Federation, load_federation
from hutong.federation.downlink import DictionaryDownlink
from hutong.federation.forwarder import FEDERATION_GROUP, forwarder_for
from hutong.federation.registry_down import FacilityDownlink
from hutong.federation.rulefiles import RuleFilesDownlink, RuleFolderPublisher
from hutong.keys import keyed_pseudonym, pseudonym_key
from hutong.metrics import Metrics
from hutong.metrics.children import MULTIPROC_ENV, prepare_dir
from hutong.metrics.monitor import Monitor
from hutong.ratelimit import KeyedLimiter
from hutong.registry.facilities import (
    FACILITIES_TOPIC,
    FacilityFeed,
    file_changes,
    publish_facilities,
)
from hutong.registry.practitioners import (
    PRACTITIONERS_TOPIC,
    Practitioner,
    PractitionerFeed,
    load_practitioners,
    publish_practitioners,
)
from hutong.registry.practitioners import file_changes as practitioner_file_changes
from hutong.stack.broker import EmbeddedBroker, wait_for_kafka
from hutong.stack.processes import Child, DataDirLock, ensure_port_free
from hutong.stack.topics import ensure_topics
from hutong.terminology import TerminologyFolder
from hutong.topicfeed import TopicFeed
from hutong.users import Users
from producers.intake import Intake
from producers.kafka import AsyncProducer
from producers.receipts import ReceiptLog
from schemas.registry import EMBEDDED, Resolver, resolver
from sinks.docstore.sink import DocumentSink
from sinks.docstore.store import DocumentStore, open_store
from sinks.runner import SinkRunner
from sinks.warehouse import TABLES, TableSpec, Warehouse, migrate, open_warehouse
from sinks.warehouse.pseudonyms import Pseudonyms, protect
from sinks.warehouse.sink import WarehouseSink
from sinks.webhook import WebhookSink
from streams.mapfeed import MapFeed
from streams.topology import INPUT_TOPICS, STAGE_GROUP, STAGE_TOPICS, STREAMS_GROUP

__all__ = ["SINK_GROUP", "SINK_TOPICS", "Hub", "child_environment", "facility_limiter",
           "http_config", "warehouse_tables"]

log = logging.getLogger(__name__)

SINK_GROUP = "hutong-sink-warehouse"
WEBHOOK_GROUP = "hutong-sink-webhook"
DOCUMENTS_GROUP = "hutong-sink-documents"
DOCUMENT_TOPICS = ["^hutong\\.std\\..*"]
_AUDIT_PURGE_EVERY_S = 86400.0
#: How long a starting process waits to read the facility registry topic.
_REGISTRY_READY_S = 30.0
ALERTS_TOPIC = "hutong.alerts.critical"
SINK_TOPICS = ["^hutong\\.std\\..*", "hutong.empi.links", "hutong.empi.review",
               "hutong.terminology.maps", "hutong.terminology.unmapped", "hutong.alerts.critical",
               "hutong.registry.practitioners", "hutong.registry.unknown-practitioners",
               "hutong.dlq"]


def child_environment(settings: Settings) -> dict[str, str]:
    """The settings as ``HUTONG_*`` variables, for child processes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUTONG_")}
    for name, value in settings.model_dump(mode="json").items():
        if value is None:
            continue
        text = value if isinstance(value, str) else json.dumps(value)
        env[f"HUTONG_{name.upper()}"] = text
    for name in type(settings).model_fields:  # model_dump masks secrets and URL passwords
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            env[f"HUTONG_{name.upper()}"] = value.get_secret_value()
        elif name in URL_FIELDS and value is not None:
            env[f"HUTONG_{name.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    env["HUTONG_KAFKA_BOOTSTRAP"] = settings.bootstrap
    # A child sees the broker as external: it must still size its tables as the topics are.
    env["HUTONG_KAFKA_PARTITIONS"] = str(settings.topic_partitions)
    return env


def warehouse_tables(settings: Settings) -> Mapping[str, TableSpec]:
    """What the warehouse rows hold: pseudonymised by default (``warehouse_identifiers``)."""
    if settings.warehouse_identifiers == "raw":
        return TABLES
    return protect(TABLES, Pseudonyms(pseudonym_key(settings)))


class _ApiServer(uvicorn.Server):
    """uvicorn without its own signal handling: the hub (or CLI) owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def http_config(settings: Settings, app: Any, port: int, **options: Any) -> uvicorn.Config:
    """uvicorn's settings for one of the hub's HTTP servers: HTTPS with the hardened
    context of `connectors.tls` when ``http_tls`` is set."""
    if settings.http_tls:
        cert, key = settings.tls_cert_file, settings.tls_key_file
        assert cert is not None and key is not None  # noqa: S101 (the settings check it)
        context = http_server_context(cert, key)  # a ConfigError before anything listens
        options["ssl_context_factory"] = lambda _config, _default: context
    return uvicorn.Config(app, host=settings.http_host, port=port, log_level="warning",
                          lifespan="off", timeout_graceful_shutdown=5, **options)


def facility_limiter(settings: Settings) -> KeyedLimiter | None:
    """The per-facility rate limit of MLLP and HTTP ingest; None when it is off."""
    if not settings.facility_rate_limit:
        return None
    return KeyedLimiter(rate=settings.facility_rate_limit, burst=settings.facility_rate_burst)


class Hub:
    """Starts, watches and stops every component of one hub."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.lock = DataDirLock(settings.data_dir)
        self.broker: EmbeddedBroker | None = None
        self.warehouse: Warehouse | None = None
        self.sink: SinkRunner | None = None
        self.webhooks: SinkRunner | None = None
        self.documents: DocumentStore | None = None
        self.document_sink: SinkRunner | None = None
        self.mapfeed: MapFeed | None = None
        self.facility_feed: FacilityFeed | None = None
        #: The registry file's entries; None without a file (then the topic alone rules).
        self._file_facilities: tuple[Facility, ...] | None = None
        self.practitioner_feed: PractitionerFeed | None = None
        self.federation: Federation | None = None
        self.forwarder: SinkRunner | None = None
        self.downlink: DictionaryDownlink | None = None
        self.rule_downlink: RuleFilesDownlink | None = None
        self.facility_downlink: FacilityDownlink | None = None
        self.rule_files: RuleFolderPublisher | None = None
        self._file_practitioners: tuple[Practitioner, ...] | None = None
        self.terminology: TerminologyFolder | None = None
        self.streams: list[Child] = []
        self.producer: AsyncProducer | None = None
        self.mllp: MLLPServer | None = None
        self.mllps: MLLPServer | None = None
        self.intake: Intake | None = None
        self.registry = FacilityRegistry()
        self.users = Users()
        self.receipts: ReceiptLog | None = None
        self.audit: AuditLog | None = None
        self.batch: BatchWatcher | None = None
        self.ids: Resolver = EMBEDDED
        self._api: uvicorn.Server | None = None
        self._api_task: asyncio.Task[None] | None = None
        self._clickhouse: uvicorn.Server | None = None
        self._clickhouse_task: asyncio.Task[None] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self.monitor: Monitor | None = None
        self.metrics.watch_components(self.health)
        #: Set when a component the hub cannot do without has died.
        self.failed = asyncio.Event()

    def _check_free(self) -> None:
        s = self.settings
        if s.plan.connectors:
            ensure_port_free(s.mllp_host, s.mllp_port, "MLLP", "HUTONG_MLLP_PORT")
        ensure_port_free(s.http_host, s.http_port, "HTTP API", "HUTONG_HTTP_PORT")
        if s.plan.connectors and s.mllps_port is not None:
            ensure_port_free(s.mllp_host, s.mllps_port, "MLLP over TLS", "HUTONG_MLLPS_PORT")
        if self._clickhouse_http_port is not None:
            ensure_port_free(s.http_host, self._clickhouse_http_port, "ClickHouse HTTP interface",
                             "HUTONG_CLICKHOUSE_HTTP_PORT")

    @property
    def _clickhouse_http_port(self) -> int | None:
        """The analysts' ClickHouse HTTP port: served by the hub that owns chDB only."""
        s = self.settings
        return s.clickhouse_http_port if s.plan.clickhouse_http else None

    def _load_registry(self) -> None:
        """Read the registry file (checked now, published to the topic once Kafka is up)
        and the users file."""
        s = self.settings
        path = s.facility_registry_path
        self._file_facilities = FacilityRegistry.load(path).facilities(retired=True) \
            if path is not None else None
        self.registry = FacilityRegistry(open_intake=s.intake_open)
        federation = s.federation_path
        self.federation = load_federation(federation) if federation is not None else None
        staff = s.practitioner_registry_path
        self._file_practitioners = load_practitioners(staff) if staff is not None else None
        self.users = Users.load(s.users_path, api_token=s.api_token.get_secret_value()
                                if s.api_token else None)

    async def _follow_registry(self) -> None:
        """Follow the facility registry topic; publish what the registry file adds, changes
        or takes out; then the connectors may authenticate."""
        s = self.settings
        assert self.producer is not None  # noqa: S101
        declare = (lambda f: self.metrics.declare_facilities([f.id])) if s.plan.connectors \
            else None
        feed = self.facility_feed = FacilityFeed(s.kafka_client_config(), self.registry,
                                                 self.ids, on_change=declare)
        feed.start()
        if not await asyncio.to_thread(feed.wait_ready, _REGISTRY_READY_S):
            raise StackError(f"the facility registry ({FACILITIES_TOPIC}) was not read in "
                             f"{_REGISTRY_READY_S:.0f} s: is Kafka reachable?")
        if s.plan.embedded_broker and s.plan.api:
            log.info("the embedded broker keeps its topics in memory: facilities added or "
                     "changed through the API last until the hub stops; keep them in %s",
                     s.facilities_file or s.data_dir / "facilities.yaml")
        changes = [] if self._file_facilities is None else file_changes(
            self._file_facilities, dict(feed.records), datetime.now(UTC))
        if (problem := self.registry.check(*(r.facility for r in changes))) is not None:
            raise ConfigError(f"facility registry file {s.facility_registry_path}: {problem} "
                              f"(with what {FACILITIES_TOPIC} holds)")
        await publish_facilities(self.producer, changes, self.ids)
        for record in changes:
            feed.put(record)
        if changes:
            log.info("facility registry: %d change(s) from the registry file published",
                     len(changes))
        if not s.plan.connectors:
            return
        if s.intake_open:
            log.warning("intake is open: plain MLLP from any facility is accepted "
                        "(HUTONG_INTAKE_OPEN); do not run a production hub like this")
        elif not len(self.registry):
            log.warning("no facility is registered, so every message will be refused: "
                        "list facilities in %s (see docs/operations.md)",
                        s.facilities_file or s.data_dir / "facilities.yaml")
        else:
            log.info("%d facilities registered", len(self.registry))

    def _feeds(self) -> list[TopicFeed]:
        """The topic feeds this process follows."""
        feeds: list[TopicFeed | None] = [
            self.mapfeed, self.facility_feed, self.practitioner_feed,
            self.rule_files.published if self.rule_files is not None else None,
            self.downlink, self.rule_downlink, self.facility_downlink]
        return [feed for feed in feeds if feed is not None]

    def _start_feeds(self) -> None:
        """Start reading the compacted topics the API follows, side by side with the
        facility registry: each takes about half a second to read whole, and the steps
        that need one wait for it then."""
        s = self.settings
        if not s.plan.api or self.producer is None:
            return
        config = s.kafka_client_config()
        self.mapfeed = MapFeed(config, self.ids)
        self.practitioner_feed = PractitionerFeed(config, self.ids)
        self.rule_files = RuleFolderPublisher(s.critical_values_path, self.producer, config,
                                              self.ids, s.terminology_poll_s)
        for feed in (self.mapfeed, self.practitioner_feed, self.rule_files.published):
            feed.start()

    async def _follow_practitioners(self) -> None:
        """Follow the practitioner registry (for the API) and publish what the practitioner
        file adds, changes or takes out; the API process is the one that does."""
        s = self.settings
        assert self.producer is not None  # noqa: S101
        feed = self.practitioner_feed
        assert feed is not None  # noqa: S101 - started with the other feeds
        if not await asyncio.to_thread(feed.wait_ready, _REGISTRY_READY_S):
            raise StackError(f"the practitioner registry ({PRACTITIONERS_TOPIC}) was not read "
                             f"in {_REGISTRY_READY_S:.0f} s: is Kafka reachable?")
        if self._file_practitioners is None:
            return
        key = pseudonym_key(s)
        changes = practitioner_file_changes(self._file_practitioners, dict(feed.records),
                                            datetime.now(UTC),
                                            lambda number: keyed_pseudonym(key, number,
                                                                           "practitioner"))
        await publish_practitioners(self.producer, changes, self.ids)
        for record in changes:
            feed.put(record)
        log.info("practitioner registry: %s; %d change(s) from %s published", feed.loaded(),
                 len(changes), s.practitioner_registry_path)

    def _open_intake(self) -> None:
        """The intake, with its receipts and the audit log under this process's data dir:
        the connectors hand it what arrives, the API retries dead letters through it. A
        process with the API and no connectors opens it for retries only (no listener,
        no ingest route)."""
        s = self.settings
        assert self.producer is not None  # noqa: S101
        self.receipts = ReceiptLog(s.data_dir / "receipts.sqlite",
                                   retention_s=s.receipt_retention_days * 86400)
        self.intake = Intake(self.producer, self.metrics, self.ids, registry=self.registry,
                             receipts=self.receipts, audit=self.audit,
                             rate_limit=facility_limiter(s))
        self.metrics.stages.declare("producer")  # its dead letters counted from 0

    async def _start_listeners(self) -> None:
        s = self.settings
        assert self.intake is not None  # noqa: S101
        common: dict[str, Any] = {
            "host": s.mllp_host, "max_frame_bytes": s.mllp_max_frame_bytes,
            "idle_timeout": s.mllp_idle_timeout_s, "frame_timeout": s.mllp_frame_timeout_s,
            "max_connections": s.mllp_max_connections, "registry": self.registry}
        self.mllp = MLLPServer(self.intake, self.metrics, port=s.mllp_port, **common)
        await self.mllp.start()
        if s.mllps_port is not None:
            assert s.tls_cert_file and s.tls_key_file and s.tls_client_ca_file  # noqa: S101
            context = server_context(s.tls_cert_file, s.tls_key_file, s.tls_client_ca_file)
            self.mllps = MLLPServer(self.intake, self.metrics, port=s.mllps_port,
                                    ssl_context=context, **common)
            await self.mllps.start()
        self.batch = BatchWatcher(s.batch_dir or s.data_dir / "batch", self.intake,
                                  self.registry, poll_s=s.batch_poll_s)
        await self.batch.start()

    async def start(self) -> None:
        s = self.settings
        self.lock.acquire()
        try:
            self._check_free()
            self._load_registry()
            # Admin actions (API), refusals (intake) and access-audit purges go here.
            self.audit = AuditLog(s.data_dir / "audit")
            await asyncio.to_thread(self._start_backbone)
            if s.plan.streams:
                self._start_streams()
            if s.plan.producer:
                self.producer = AsyncProducer(s.kafka_client_config())
            self._start_feeds()
            if s.plan.intake:
                await self._follow_registry()
                self._open_intake()
            if s.plan.connectors:
                await self._start_listeners()
            if s.plan.api:
                await self._start_terminology()
                if self.producer is not None:
                    await self._follow_practitioners()
                self._start_downlink()
            await self._start_api()
            await self._start_clickhouse_http()
            self._start_monitor()
            self._supervisor = asyncio.create_task(self._supervise(), name="supervisor")
        except BaseException:
            await self.stop()
            raise
        log.info("hutong is up (%s): %s", ", ".join(s.components),
                 ", ".join(f"{k} {v}" for k, v in self.describe().items()))

    def _start_backbone(self) -> None:
        s = self.settings
        if s.embedded_broker:
            self.broker = EmbeddedBroker(s.data_dir, s.kafka_port)
            self.broker.start()
        else:
            wait_for_kafka(s.kafka_client_config(), timeout=30)
        ensure_topics(s.kafka_client_config(), partitions=s.topic_partitions,
                      replication=s.kafka_replication)
        self.ids = resolver(s.schema_registry_url)
        if s.plan.warehouse:  # migrations are idempotent: the sinks and the API both run them
            self.warehouse = open_warehouse(s.clickhouse_url, s.data_dir)
            migrate(self.warehouse, s.clickhouse_cluster)
        if s.plan.documents:
            self.documents = open_store(s.docstore_url, s.data_dir)
            self.documents.migrate()  # under an advisory lock on PostgreSQL
            self._purge_access_audit()
        if s.plan.sinks:
            self._start_sinks()

    def _start_sinks(self) -> None:
        s = self.settings
        assert self.warehouse is not None and self.documents is not None  # noqa: S101
        self.sink = SinkRunner(s.kafka_client_config(), SINK_GROUP, SINK_TOPICS,
                               WarehouseSink(self.warehouse, self.metrics, warehouse_tables(s)),
                               self.metrics, s.sink_batch_size, self.ids,
                               batch_wait_s=s.sink_batch_wait_s)
        self.sink.start()
        self.document_sink = SinkRunner(s.kafka_client_config(), DOCUMENTS_GROUP,
                                        DOCUMENT_TOPICS,
                                        DocumentSink(self.documents, self.metrics, self.ids),
                                        self.metrics, s.sink_batch_size, self.ids,
                                        batch_wait_s=s.sink_batch_wait_s)
        self.document_sink.start()
        if s.alert_webhook_urls:
            secret = s.alert_webhook_secret.get_secret_value() if s.alert_webhook_secret \
                else None
            self.webhooks = SinkRunner(s.kafka_client_config(), WEBHOOK_GROUP,
                                       [ALERTS_TOPIC], WebhookSink(s.alert_webhook_urls, secret),
                                       self.metrics, 100, self.ids)
            self.webhooks.start()
        up = self.federation.up if self.federation is not None else None
        if self.federation is not None and up is not None:
            key = pseudonym_key(s)
            forwarder = forwarder_for(
                self.federation, self.metrics,
                lambda value: keyed_pseudonym(key, value, "federation"), self.ids)
            self.forwarder = SinkRunner(s.kafka_client_config(), FEDERATION_GROUP, up.topics,
                                        forwarder, self.metrics, up.batch, self.ids)
            self.forwarder.start()
            log.info("federation: forwarding %s to the platform above (%s) as %s",
                     ", ".join(up.event_types), up.mode, self.federation.platform_id)

    def _start_downlink(self) -> None:
        """Follow the platform above's code maps and critical-value lists (the API's
        process, which has the maps)."""
        s = self.settings
        down = self.federation.down if self.federation is not None else None
        if down is None or self.mapfeed is None:
            return
        self.downlink = DictionaryDownlink(down.client_config(), s.kafka_client_config(),
                                           self.mapfeed, self.metrics, origin=down.name,
                                           ids=self.ids)
        self.downlink.start()
        if self.rule_files is not None:
            self.rule_downlink = RuleFilesDownlink(
                down.client_config(), s.kafka_client_config(), self.rule_files.published,
                self.metrics, origin=down.name, ids=self.ids)
            self.rule_downlink.start()
        if self.facility_feed is not None:
            self.facility_downlink = FacilityDownlink(
                down.client_config(), s.kafka_client_config(), self.facility_feed, self.metrics,
                origin=down.name, marks=s.data_dir / "federation" / "marks-facility.json",
                ids=self.ids)
            self.facility_downlink.start()
        log.info("federation: following the code maps, critical-value lists and facility "
                 "registry of %s at %s", down.name, down.bootstrap)

    def _start_streams(self) -> None:
        env = child_environment(self.settings)
        # The workers' metrics, in files this process's /metrics reads (ADR 0007).
        self.metrics.children.path = prepare_dir(self.settings.data_dir / "metrics")
        env[MULTIPROC_ENV] = str(self.metrics.children.path)
        for n in range(self.settings.streams_workers):
            child = Child(f"stream worker {n}",
                          [sys.executable, "-m", "streams", "--worker", str(n)],
                          self.settings.data_dir / "logs" / f"streams-{n}.log", env=env)
            child.start()
            self.streams.append(child)

    def _start_monitor(self) -> None:
        """Consumer lag and the warehouse's gauges, from the processes that run the API."""
        s = self.settings
        if not s.plan.api:
            return
        groups = {STAGE_GROUP: list(STAGE_TOPICS), STREAMS_GROUP: list(INPUT_TOPICS),
                  SINK_GROUP: SINK_TOPICS,
                  DOCUMENTS_GROUP: DOCUMENT_TOPICS}
        if s.alert_webhook_urls:
            groups[WEBHOOK_GROUP] = [ALERTS_TOPIC]
        if self.federation is not None and self.federation.up is not None:
            groups[FEDERATION_GROUP] = self.federation.up.topics
        self.monitor = Monitor(self.metrics, client_config=s.kafka_client_config(),
                               groups=groups, warehouse=self.warehouse)
        self.monitor.start()

    async def _start_terminology(self) -> None:
        s = self.settings
        assert self.producer is not None  # noqa: S101
        assert self.mapfeed is not None and self.rule_files is not None  # noqa: S101
        self.terminology = TerminologyFolder(s.terminology_dir or s.data_dir / "terminology",
                                             self.producer, self.ids, self.mapfeed,
                                             s.terminology_poll_s)
        await asyncio.gather(self.terminology.start(), self.rule_files.start())

    async def _start_api(self) -> None:
        s = self.settings
        api_part = s.plan.api  # a process without it answers those routes 503
        api = create_api(self.metrics, warehouse=self.warehouse if api_part else None,
                         health=self.health,
                         api_token=s.api_token.get_secret_value() if s.api_token else None,
                         serve_registry=api_part and s.schema_registry_url is None,
                         intake=self.intake if s.plan.connectors else None,
                         retry_intake=self.intake, facilities=self.registry,
                         max_body_bytes=s.http_max_body_bytes,
                         producer=self.producer if api_part else None, ids=self.ids,
                         mapfeed=self.mapfeed, users=self.users,
                         facility_feed=self.facility_feed if api_part else None,
                         practitioner_feed=self.practitioner_feed if api_part else None,
                         pseudonym_key=pseudonym_key(s), monitor_cache_s=s.monitor_cache_s,
                         federation=self.federation if api_part else None,
                         downlinks=[d for d in (self.downlink, self.rule_downlink,
                                                self.facility_downlink)
                                    if d is not None] if api_part else [],
                         documents=self.documents if api_part else None,
                         kafka_config=s.kafka_client_config(), audit=self.audit)
        self._api = _ApiServer(http_config(s, api, s.http_port))
        self._api_task = asyncio.create_task(self._api.serve(), name="http-api")
        while not self._api.started:
            if self._api_task.done():
                self._api_task.result()
            await asyncio.sleep(0.02)

    async def _start_clickhouse_http(self) -> None:
        """Analysts' ClickHouse HTTP interface (`hutong.api.clickhouse_http`); no access log,
        since URLs carry query text."""
        port = self._clickhouse_http_port
        if port is None or self.warehouse is None:
            return
        app = create_clickhouse_http(self.warehouse, self.users, self.audit)
        self._clickhouse = _ApiServer(http_config(self.settings, app, port, access_log=False))
        self._clickhouse_task = asyncio.create_task(self._clickhouse.serve(),
                                                    name="clickhouse-http")
        while not self._clickhouse.started:
            if self._clickhouse_task.done():
                self._clickhouse_task.result()
            await asyncio.sleep(0.02)

    async def _supervise(self, every: float = 1.0) -> None:
        """Restart stream workers that died (with back-off); a dead broker ends the hub."""
        restarts: dict[str, float] = {}
        purge_at = asyncio.get_running_loop().time() + _AUDIT_PURGE_EVERY_S
        while True:
            await asyncio.sleep(every)
            if self.sink is not None and not self.sink.alive():
                log.critical("the warehouse sink stopped; the hub stops rather than ACK "
                             "messages the warehouse will not see")
                self.failed.set()
                return
            if self.document_sink is not None and not self.document_sink.alive():
                log.critical("the document sink stopped; the hub stops rather than ACK "
                             "documents the store will not see")
                self.failed.set()
                return
            if self.documents is not None and asyncio.get_running_loop().time() >= purge_at:
                purge_at += _AUDIT_PURGE_EVERY_S
                try:
                    await asyncio.to_thread(self._purge_access_audit)
                except DocumentStoreError as exc:  # kept longer is no harm: try tomorrow
                    log.error("purging the access audit failed: %s", exc)
            if self.broker is not None and not self.broker.child.alive():
                log.critical("the embedded broker died:\n%s", self.broker.child.tail())
                self.failed.set()
                return
            now = asyncio.get_running_loop().time()
            for child in self.streams:
                if child.alive() or now < restarts.get(child.name, 0.0):
                    continue
                log.error("%s exited; restarting it. Its last lines:\n%s", child.name,
                          child.tail())
                restarts[child.name] = now + 10.0
                child.stop()
                child.start()

    def _purge_access_audit(self) -> None:
        """Drop document-access records past their retention; the purge, with the hash
        where the kept chain now begins and its head, goes to the audit log, so the
        database's chain is witnessed outside the database."""
        assert self.documents is not None  # noqa: S101
        days = self.settings.access_audit_retention_days
        purged = self.documents.purge_audit(days)
        if purged and self.audit is not None:
            self.audit.record("access_audit.purged", rows=purged, retention_days=days,
                              head=self.documents.audit_head())

    def health(self) -> dict[str, str]:
        """The state of each part this process runs, for ``/healthz`` and the supervisor."""
        plan = self.settings.plan
        state: dict[str, str] = {}
        if self.broker is not None:
            state["kafka"] = "ok" if self.broker.child.alive() else "down"
        if plan.connectors:
            state["mllp"] = "ok" if self.mllp is not None else "down"
            if self.settings.mllps_port is not None:
                state["mllps"] = "ok" if self.mllps is not None else "down"
        for child in self.streams:
            state[child.name] = "ok" if child.alive() else "down"
        if plan.warehouse:
            state["warehouse"] = "ok" if self.warehouse is not None else "down"
        if plan.sinks:
            state["sink"] = "ok" if self.sink is not None and self.sink.alive() else "down"
            state["documents"] = ("ok" if self.document_sink is not None
                                  and self.document_sink.alive() else "down")
            if self.federation is not None and self.federation.up is not None:
                state["federation"] = ("ok" if self.forwarder is not None
                                       and self.forwarder.alive() else "down")
        return state

    async def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until the sinks have their partitions (the stream worker joins on its own)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for runner, name in ((self.sink, "warehouse"), (self.document_sink, "document")):
            while runner is not None and not runner.assigned.is_set():
                if loop.time() > deadline:
                    raise TimeoutError(f"the {name} sink did not join its consumer group")
                await asyncio.sleep(0.1)

    async def stop(self) -> None:
        """Stop everything that started, in reverse order; safe to call twice."""
        for feed in self._feeds():  # each notices within half a second: side by side
            feed.request_stop()
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
            self._supervisor = None
        if self.monitor is not None:
            await asyncio.to_thread(self.monitor.stop)
            self.monitor = None
        if self._clickhouse is not None:
            self._clickhouse.should_exit = True
            if self._clickhouse_task is not None:
                await asyncio.gather(self._clickhouse_task, return_exceptions=True)
            self._clickhouse = None
        if self._api is not None:
            self._api.should_exit = True
            if self._api_task is not None:
                await asyncio.gather(self._api_task, return_exceptions=True)
            self._api = None
        if self.batch is not None:
            await self.batch.stop()
            self.batch = None
        if self.terminology is not None:
            await self.terminology.stop()
            self.terminology = None
        if self.rule_files is not None:
            await self.rule_files.stop()
            self.rule_files = None
        if self.mapfeed is not None:
            self.mapfeed.stop()
            self.mapfeed = None
        if self.facility_feed is not None:
            self.facility_feed.stop()
            self.facility_feed = None
        if self.practitioner_feed is not None:
            self.practitioner_feed.stop()
            self.practitioner_feed = None
        for downlink in (self.downlink, self.rule_downlink, self.facility_downlink):
            if downlink is not None:
                downlink.stop()
        self.downlink = self.rule_downlink = self.facility_downlink = None
        for server in (self.mllp, self.mllps):
            if server is not None:
                await server.stop()
        self.mllp = self.mllps = None
        if self.producer is not None:
            left = await asyncio.to_thread(self.producer.close)
            if left:
                log.error("%d records were not confirmed by Kafka at shutdown", left)
            self.producer = None
        if self.receipts is not None:
            await asyncio.to_thread(self.receipts.close)  # its last write, off the loop
            self.receipts = None
        await asyncio.to_thread(self._stop_backbone)
        self.lock.release()

    def _stop_backbone(self) -> None:
        # Everyone is asked first and waited for after: the stream workers' Faust
        # shutdown (commits, leaving the group) and the sinks' last batches overlap.
        runners = [r for r in (self.webhooks, self.forwarder, self.document_sink, self.sink)
                   if r is not None]
        for child in self.streams:
            child.request_stop()
        for runner in runners:
            runner.request_stop()
        for runner in runners:
            runner.stop()
        for child in self.streams:
            child.stop()
        self.streams.clear()
        self.sink = self.webhooks = self.document_sink = self.forwarder = None
        if self.documents is not None:
            self.documents.close()
            self.documents = None
        if self.warehouse is not None:
            self.warehouse.close()
            self.warehouse = None
        if self.broker is not None:
            self.broker.stop()
            self.broker = None

    def describe(self) -> dict[str, Any]:
        s = self.settings
        described: dict[str, Any] = {}
        if not s.plan.everything:
            described["parts"] = ",".join(s.components)
        if s.plan.connectors:
            described["mllp"] = f"{s.mllp_host}:{s.mllp_port}"
        described |= {"http": s.api_url, "kafka": s.bootstrap, "data_dir": str(s.data_dir)}
        if s.plan.connectors and s.mllps_port is not None:
            described["mllps"] = f"{s.mllp_host}:{s.mllps_port}"
        if self._clickhouse_http_port is not None:
            host = "127.0.0.1" if s.http_host in {"0.0.0.0", "::"} else s.http_host  # noqa: S104
            scheme = "https" if s.http_tls else "http"
            described["clickhouse"] = f"{scheme}://{host}:{self._clickhouse_http_port}"
        return described
