"""Every Prometheus metric hutong exports, declared once on an injected registry.

Labels are bounded: transport, event type (a fixed set plus ``unknown``),
outcome code, topic, table, stage. No facility label on paths an
unauthenticated sender can reach, so hostile input cannot grow the series.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["Metrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """The hub's metrics; tests build one on a fresh registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.messages = Counter(
            "hutong_messages_received_total", "Messages received, by outcome (ACK code).",
            ["transport", "event_type", "outcome"], registry=r)
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
            buckets=_LATENCY_BUCKETS, registry=r)
        self.critical_alerts = Counter(
            "hutong_critical_alerts_total",
            "Critical-value alert states: raised, escalated, acknowledged.", ["status"],
            registry=r)
        self.critical_alert_turnaround = Histogram(
            "hutong_critical_alert_turnaround_seconds",
            "From alert (or result) to acknowledgement, per acknowledged alert.", ["span"],
            buckets=(30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600), registry=r)
        self.unmapped_codes = Counter(
            "hutong_unmapped_codes_total",
            "Coded fields that came with a local code no map covers, by kind.", ["kind"],
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
        self.dead_letters = Counter(
            "hutong_dead_letters_total", "Dead letters written, by stage.", ["stage"], registry=r)

    def observe_message(self, transport: str, event_type: str, outcome: str,
                        seconds: float) -> None:
        self.messages.labels(transport, event_type, outcome).inc()
        self.ack_latency.labels(transport).observe(seconds)
