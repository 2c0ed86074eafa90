"""The warehouse as a sink: each batch split by table, one idempotent insert each."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from hutong.errors import WarehouseError
from hutong.metrics import Metrics
from hutong.metrics.labels import empi_outcome
from sinks.base import Decoded, Rejected
from sinks.warehouse.client import Warehouse
from sinks.warehouse.rows import TABLES, TableSpec
from sinks.warehouse.writer import WarehouseWriter
from streams.alerts.lifecycle import turnaround

__all__ = ["WarehouseSink"]


def _alert(metrics: Metrics, alert: dict[str, Any]) -> None:
    """A critical-value alert state seen for the first time: count it, time the loop."""
    metrics.critical_alerts.labels(alert["status"]).inc()
    if alert["status"] == "acknowledged":
        spans = turnaround(alert).seconds()
        for span in ("alert_to_ack", "result_to_ack"):
            seconds = spans[span]
            if seconds is not None:
                metrics.critical_alert_turnaround.labels(span).observe(seconds)


def _unmapped(metrics: Metrics, code: dict[str, Any]) -> None:
    metrics.unmapped_codes.labels(code["code_system"]).inc(code["count"])


def _link(metrics: Metrics, change: dict[str, Any]) -> None:
    outcome = empi_outcome(change["action"], change["decided_by"], change.get("score"))
    metrics.empi_links.labels(outcome).inc()


#: Records whose first landing is also a metric.
_OBSERVED: dict[str, Callable[[Metrics, dict[str, Any]], None]] = {
    "critical-alert": _alert, "unmapped-code": _unmapped, "empi-link": _link}


class WarehouseSink:
    """Writes decoded ``hutong.std.*`` events and dead letters into their tables.

    ``tables`` decides what each row holds: `rows.TABLES` as the events say it, or
    `pseudonyms.protect` of it (the hub's default). A record with no table, or one
    its table refuses (``to_row`` fails), is rejected for the dead-letter queue; an
    insert that fails raises, so the batch is retried.
    """

    name = "warehouse"

    def __init__(self, warehouse: Warehouse, metrics: Metrics,
                 tables: Mapping[str, TableSpec] = TABLES) -> None:
        self._tables = tables
        self._writer = WarehouseWriter(warehouse, tables)
        self._metrics = metrics

    def write(self, batch: Sequence[Decoded]) -> list[Rejected]:
        rejected: list[Rejected] = []
        by_table: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        for item in batch:
            spec = self._tables.get(item.schema_name)
            if spec is None:
                rejected.append(Rejected(item, f"no warehouse table for {item.schema_name}"))
                continue
            try:
                record = spec.locate(item.record, item.partition, item.offset)
                by_table[item.schema_name].append(spec.to_row(record))
            except WarehouseError as exc:
                rejected.append(Rejected(item, str(exc)))
        for key, rows in by_table.items():
            new_ids: set[str] = set()
            inserted, replaced = self._writer.write_changes(key, rows, new_ids=new_ids)
            table = self._tables[key].table
            self._metrics.sink_rows.labels(table).inc(inserted)
            self._metrics.sink_replaced.labels(table).inc(replaced)
            self._metrics.sink_duplicates.labels(table).inc(len(rows) - inserted - replaced)
            if key in _OBSERVED:
                spec = self._tables[key]
                for item in batch:
                    if item.schema_name == key and spec.to_row(item.record)[0] in new_ids:
                        _OBSERVED[key](self._metrics, item.record)
        return rejected

    def close(self) -> None:
        """The hub owns the warehouse and closes it."""
