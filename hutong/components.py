"""Which parts of the hub one process runs (``components``), and what each needs.

``hutong up`` runs all four in one process by default, on the embedded broker
and chDB when nothing external is named. A cluster runs each component in its
own Deployment, against external Kafka, ClickHouse and PostgreSQL:

==============  ============================================================
``connectors``  MLLP (and MLLP over TLS), the batch-file watcher, the HTTP
                ingest routes, and the Kafka producer behind them
``streams``     the stream worker processes (EMPI, code translation, alerts)
``sinks``       the warehouse sink, the document sink, the webhook sink
``api``         the HTTP API (SQL, documents, EMPI, alerts, terminology, the
                exchange monitor), the terminology folder publisher, the
                schema-registry read API, and an intake without listeners for
                the monitor's dead-letter retries
==============  ============================================================

Every process serves ``/healthz`` and ``/metrics`` on ``http_port``. The pure
rules live here so they are tested without starting anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["COMPONENTS", "Plan", "partial_set_problem", "plan"]

#: Every component, in start order.
COMPONENTS: tuple[str, ...] = ("connectors", "streams", "sinks", "api")


def partial_set_problem(components: Iterable[str], *, kafka_bootstrap: str | None,
                        clickhouse_url: str | None, docstore_url: str | None) -> str | None:
    """Why this component set cannot run with these settings, or None.

    The embedded broker, chDB and the SQLite document store belong to one process:
    a process that runs only part of the hub shares Kafka with the others, and the
    warehouse and document store if it writes or reads them (sinks, api) and another
    process does the other. The sinks and the API in one process own the embedded
    warehouse and document store between them (the other processes need neither).
    """
    chosen = set(components)
    if chosen >= set(COMPONENTS):
        return None
    missing = []
    if kafka_bootstrap is None:
        missing.append("kafka_bootstrap (HUTONG_KAFKA_BOOTSTRAP)")
    if chosen & {"sinks", "api"} and not chosen >= {"sinks", "api"}:
        if clickhouse_url is None:
            missing.append("clickhouse_url (HUTONG_CLICKHOUSE_URL)")
        if docstore_url is None:
            missing.append("docstore_url (HUTONG_DOCSTORE_URL)")
    if not missing:
        return None
    named = ",".join(c for c in COMPONENTS if c in chosen)
    return (f"components {named} run only part of the hub, so what they share with the "
            f"other parts must be external: set "
            f"{', '.join(missing)}, or run every component "
            f"(HUTONG_COMPONENTS={','.join(COMPONENTS)})")


@dataclass(frozen=True)
class Plan:
    """What one process starts, derived from its settings by :func:`plan`."""

    components: frozenset[str]
    embedded_broker: bool
    embedded_warehouse: bool

    @property
    def connectors(self) -> bool:
        return "connectors" in self.components

    @property
    def streams(self) -> bool:
        return "streams" in self.components

    @property
    def sinks(self) -> bool:
        return "sinks" in self.components

    @property
    def api(self) -> bool:
        return "api" in self.components

    @property
    def everything(self) -> bool:
        return self.components >= set(COMPONENTS)

    @property
    def warehouse(self) -> bool:
        """The sinks write the warehouse; the API answers queries from it."""
        return self.sinks or self.api

    @property
    def documents(self) -> bool:
        """The document sink writes the store; the API reads it for clinicians."""
        return self.sinks or self.api

    @property
    def producer(self) -> bool:
        """Connectors produce what arrives; the API produces decisions, acks and maps."""
        return self.connectors or self.api

    @property
    def intake(self) -> bool:
        """Connectors hand what arrives to the intake; the API retries dead letters
        through one of its own (receipts and audit under its data dir, no listener)."""
        return self.connectors or self.api

    @property
    def clickhouse_http(self) -> bool:
        """The analysts' ClickHouse HTTP port: the API of the process that owns chDB."""
        return self.api and self.embedded_warehouse


def plan(components: Iterable[str], *, kafka_bootstrap: str | None,
         clickhouse_url: str | None) -> Plan:
    """The plan for these settings (validated by the settings already)."""
    chosen = frozenset(components)
    return Plan(chosen, embedded_broker=kafka_bootstrap is None,
                embedded_warehouse=clickhouse_url is None and bool(chosen & {"sinks", "api"}))
