"""Every Prometheus metric hutong exports, declared once on an injected registry.

Two groups:

* :class:`StageMetrics`, the metrics of a pipeline stage (events in and out, the
  age of what it hands on, dead letters), kept by every process that runs a
  stage: the hub (producer, sinks) and each stream worker (EMPI, translation,
  alerts). The hub exports its own merged with its workers' (`hutong.metrics.children`).
* :class:`Metrics`, everything else the hub process exports, with process health.

Labels are bounded (`hutong.metrics.labels`): transport, facility (registered
ones only), message type, outcome, reason, stage, group, topic, table, sink.
The MLLP intake runs above 10,000 messages/s, so its per-message counts are
tallied in plain dicts and moved into their counters when the registry is
collected (:class:`_Pending`); the two latency histograms are observed directly.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from hutong.metrics.children import ChildFamilies
from hutong.metrics.labels import MESSAGE_TYPES

__all__ = ["Metrics", "StageMetrics"]

log = logging.getLogger(__name__)

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
#: From receipt to a stage's output: milliseconds when flowing, minutes when backed up.
_STAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                  300.0, 900.0)

HealthCheck = Callable[[], Mapping[str, str]]


class StageMetrics:
    """Events in and out of a stage, the age of what it hands on, its dead letters."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.events = Counter(
            "hutong_stage_events_total",
            "Events a pipeline stage read (direction in) and handed on (out).",
            ["stage", "direction"], registry=r)
        self.latency = Histogram(
            "hutong_stage_latency_seconds",
            "Age (since the hub received it) of the oldest event of each unit of work a stage "
            "finished: a message for the producer, a batch for the others.", ["stage"],
            buckets=_STAGE_BUCKETS, registry=r)
        self.dead_letters = Counter(
            "hutong_dead_letters_total", "Dead letters written, by stage.", ["stage"],
            registry=r)

    def declare(self, *stages: str) -> None:
        """Export the dead-letter count of each of ``stages`` from 0 now: a counter series
        born at its first letter shows Prometheus no increase, so the alert on dead
        letters would miss them. Each process declares the stages it runs only (the
        hub's /metrics joins its stream workers' series to its own)."""
        for stage in stages:
            self.dead_letters.labels(stage)

    def passed(self, stage: str, taken: int, given: int, age: float | None = None) -> None:
        """Count one unit of work: ``taken`` events in, ``given`` out, the oldest ``age`` s."""
        if taken:
            self.events.labels(stage, "in").inc(taken)
        if given:
            self.events.labels(stage, "out").inc(given)
        if age is not None:
            self.latency.labels(stage).observe(age)


class Metrics:
    """The hub's metrics; tests build one on a fresh registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self._pending = _Pending(self._apply)
        r.register(self._pending)  # first: it fills counters collected after it
        self._declare_intake(r)
        self._declare_sinks(r)
        self._declare_state(r)
        self._declare_federation(r)
        stage_registry = CollectorRegistry()
        self.stages = StageMetrics(stage_registry)
        self.dead_letters = self.stages.dead_letters
        #: The stage families, with the stream workers' when a folder is set (ADR 0007).
        self.children = ChildFamilies(stage_registry)
        r.register(self.children)
        self._components = _Components()
        r.register(self._components)
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        self._ack: dict[str, Any] = {}
        self._producer_latency = self.stages.latency.labels("producer")

    def _declare_intake(self, r: CollectorRegistry) -> None:
        self.messages = Counter(
            "hutong_messages_received_total", "Messages received, by outcome (ACK code).",
            ["transport", "event_type", "outcome"], registry=r)
        self.facility_messages = Counter(
            "hutong_facility_messages_total",
            "Messages received per facility and message type, by outcome (AA, AE, AR).",
            ["facility", "message_type", "outcome"], registry=r)
        self.facility_rejected = Counter(
            "hutong_facility_rejected_total",
            "Messages and connections not accepted, per facility, by reason.",
            ["facility", "reason"], registry=r)
        self.facility_bytes = Counter(
            "hutong_facility_bytes_total", "Message bytes received per facility.",
            ["facility", "transport"], registry=r)
        self.facility_last_message = Gauge(
            "hutong_facility_last_message_timestamp_seconds",
            "Unix time of the facility's last accepted (AA) message.", ["facility"],
            registry=r)
        self.ack_latency = Histogram(
            "hutong_ack_latency_seconds", "From receipt to ACK, durable write included.",
            ["transport"], buckets=_LATENCY_BUCKETS, registry=r)
        self.refused = Counter(
            "hutong_intake_refused_total",
            "Messages refused before storage: unknown facility, address or certificate.",
            ["transport"], registry=r)
        self.resends = Counter(
            "hutong_intake_resends_total",
            "Messages recognised as resends of accepted ones: ACKed again, not stored.",
            ["transport"], registry=r)
        self.audit_suppressed = Counter(
            "hutong_audit_suppressed_total",
            "Refusal audit records left out because one address sent too many.",
            ["action"], registry=r)
        self.connections = Gauge(
            "hutong_mllp_connections", "Open MLLP connections.", registry=r)
        self.connections_refused = Counter(
            "hutong_mllp_connections_refused_total",
            "MLLP connections closed before any message: over the limit, TLS handshake failed.",
            ["reason"], registry=r)
        self.framing_errors = Counter(
            "hutong_mllp_framing_errors_total", "Bytes outside frames, oversize frames.",
            ["kind"], registry=r)

    def _declare_sinks(self, r: CollectorRegistry) -> None:
        self.sink_rows = Counter(
            "hutong_sink_rows_written_total", "Rows inserted into the warehouse.",
            ["table"], registry=r)
        self.sink_replaced = Counter(
            "hutong_sink_rows_replaced_total",
            "Rows replaced by an event processed again differently (a replay after a map "
            "was added).", ["table"], registry=r)
        self.sink_duplicates = Counter(
            "hutong_sink_duplicates_skipped_total", "Events already in the warehouse.",
            ["table"], registry=r)
        self.sink_batch_seconds = Histogram(
            "hutong_sink_batch_seconds", "Time to write one batch and commit offsets.",
            ["sink"], buckets=_LATENCY_BUCKETS, registry=r)
        self.sink_last_commit = Gauge(
            "hutong_sink_last_commit_timestamp_seconds",
            "Unix time a sink last committed a batch, or found itself caught up on the "
            "partitions it holds (idle is not stalled); its start until then.", ["sink"],
            registry=r)
        self.documents_stored = Counter(
            "hutong_documents_stored_total",
            "Shared document versions stored, by kind (received, lab-report, ...).", ["kind"],
            registry=r)
        self.document_duplicates = Counter(
            "hutong_document_duplicates_total",
            "Document parts and documents already stored (redeliveries, unchanged "
            "re-assemblies), by item: part or document.", ["item"], registry=r)
        self.document_access = Counter(
            "hutong_document_access_total",
            "Audited reads of patient documents, by action (index, read) and outcome.",
            ["action", "outcome"], registry=r)

    def _declare_federation(self, r: CollectorRegistry) -> None:
        self.federation_events = Counter(
            "hutong_federation_events_total",
            "Standardized events the forwarder handled, by outcome: sent, deidentified "
            "(sent without who the patient is), withheld (kept home by a rule), refused "
            "(the upstream will never take it: a dead letter).", ["outcome"], registry=r)
        self.federation_failures = Counter(
            "hutong_federation_failures_total",
            "Deliveries to the upstream platform that failed and are being retried.",
            registry=r)
        self.federation_received = Counter(
            "hutong_federation_received_total",
            "Events received from platforms below, per platform.", ["platform"], registry=r)
        self.federation_dictionary = Counter(
            "hutong_federation_dictionary_total",
            "Dictionary and index entries from the platform above (code maps, critical-value "
            "rule files, facilities), by kind and outcome: apply, same, conflict (this hub's "
            "own kept).",
            ["kind", "outcome"], registry=r)

    def _declare_state(self, r: CollectorRegistry) -> None:
        self.consumer_lag = Gauge(
            "hutong_consumer_lag", "Records not yet committed by a hutong consumer group.",
            ["group", "topic"], registry=r)
        self.empi_links = Counter(
            "hutong_empi_links_total", "EMPI link changes stored, by how they were decided.",
            ["decided_by"], registry=r)
        self.empi_review_backlog = Gauge(
            "hutong_empi_review_backlog", "EMPI review pairs open (undecided).", registry=r)
        self.unmapped_codes = Counter(
            "hutong_unmapped_codes_total",
            "Coded fields that came with a local code no map covers, by kind.", ["kind"],
            registry=r)
        self.critical_alerts = Counter(
            "hutong_critical_alerts_total",
            "Critical-value alert states: raised, escalated, acknowledged.", ["status"],
            registry=r)
        self.critical_alerts_open = Gauge(
            "hutong_critical_alerts_open", "Critical-value alerts not yet acknowledged.",
            registry=r)
        self.critical_alert_oldest_open = Gauge(
            "hutong_critical_alert_oldest_open_seconds",
            "Age of the oldest unacknowledged critical-value alert (0 when none is open).",
            registry=r)
        self.critical_alert_turnaround = Histogram(
            "hutong_critical_alert_turnaround_seconds",
            "From alert (or result) to acknowledgement, per acknowledged alert.", ["span"],
            buckets=(30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600), registry=r)
        self.monitor_errors = Counter(
            "hutong_monitor_errors_total",
            "Failed refreshes of the gauges read from Kafka (lag) or the warehouse.",
            ["check"], registry=r)

    def declare_facilities(self, facilities: Iterable[str]) -> None:
        """Export each registered facility's AE and AR counts from 0 now, per message type,
        so the error-rate rule's rate() sees its first refused messages (a series born at
        its first count shows no increase). Bounded: registry x types x 2."""
        for facility in facilities:
            for kind in MESSAGE_TYPES:
                for outcome in ("AE", "AR"):
                    self.facility_messages.labels(facility, kind, outcome)

    # --- the intake's per-message counts --------------------------------------------

    def message(self, *, transport: str, facility: str, message_type: str, event_type: str,
                outcome: str, reason: str | None, size: int, events: int,
                seconds: float) -> None:
        """One message answered (labels from `hutong.metrics.labels`)."""
        ack = self._ack.get(transport)
        if ack is None:
            ack = self._ack[transport] = self.ack_latency.labels(transport)
        ack.observe(seconds)
        self._producer_latency.observe(seconds)
        self._pending.message((transport, facility, message_type, event_type, outcome,
                               reason or ""), size, events, outcome == "AA")

    def refusal(self, facility: str, reason: str) -> None:
        """Input turned away before a message was read (TLS, API key, HTTP body)."""
        self._pending.refusal(facility, reason)

    def _apply(self, messages: Mapping[tuple[str, ...], list[int]],
               refusals: Mapping[tuple[str, str], int], last: Mapping[str, float]) -> None:
        taken = given = 0
        for (transport, facility, kind, event_type, outcome, reason), (n, size, events) in (
                messages.items()):
            self.messages.labels(transport, event_type, outcome).inc(n)
            self.facility_messages.labels(facility, kind, outcome).inc(n)
            if reason:
                self.facility_rejected.labels(facility, reason).inc(n)
            if size:
                self.facility_bytes.labels(facility, transport).inc(size)
            taken += n
            given += events
        for (facility, reason), n in refusals.items():
            self.facility_rejected.labels(facility, reason).inc(n)
        for facility, at in last.items():
            self.facility_last_message.labels(facility).set(at)
        self.stages.passed("producer", taken, given)

    # --- state read at scrape time ------------------------------------------------

    def watch_components(self, health: HealthCheck) -> None:
        """Export ``hutong_component_up`` from ``health`` (``Hub.health``) at each scrape."""
        self._components.health = health


class _Pending(Collector):
    """Per-message counts in plain dicts under one lock, handed to ``apply`` (which fills
    the counters) when the registry collects; registered before those counters."""

    def __init__(self, apply: Callable[[Mapping[tuple[str, ...], list[int]],
                                        Mapping[tuple[str, str], int],
                                        Mapping[str, float]], None]) -> None:
        self._apply = apply
        self._lock = threading.Lock()
        self._messages: dict[tuple[str, ...], list[int]] = {}
        self._refusals: dict[tuple[str, str], int] = {}
        self._last: dict[str, float] = {}

    def message(self, key: tuple[str, ...], size: int, events: int, accepted: bool) -> None:
        with self._lock:
            entry = self._messages.get(key)
            if entry is None:
                entry = self._messages[key] = [0, 0, 0]
            entry[0] += 1
            entry[1] += size
            entry[2] += events
            if accepted:
                self._last[key[1]] = time.time()

    def refusal(self, facility: str, reason: str) -> None:
        with self._lock:
            self._refusals[(facility, reason)] = self._refusals.get((facility, reason), 0) + 1

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            messages, self._messages = self._messages, {}
            refusals, self._refusals = self._refusals, {}
            last = dict(self._last)
        self._apply(messages, refusals, last)
        return iter(())


class _Components(Collector):
    """``hutong_component_up``: 1 for each part ``health`` calls ok, 0 for the others."""

    def __init__(self) -> None:
        self.health: HealthCheck | None = None

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "hutong_component_up", "1 when a component of this process is ok (/healthz), "
            "else 0.", labels=["component"])
        if self.health is not None:
            try:
                states = dict(self.health())
            except Exception:  # a scrape must not fail because one check did
                log.exception("health check failed while exporting hutong_component_up")
                states = {}
            for name, state in sorted(states.items()):
                family.add_metric([name], 1.0 if state == "ok" else 0.0)
        yield family
