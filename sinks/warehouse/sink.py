"""The warehouse as a sink: each batch split by table, one idempotent insert each."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from hutong.metrics import Metrics
from sinks.base import Decoded
from sinks.warehouse.client import Warehouse
from sinks.warehouse.rows import TABLES
from sinks.warehouse.writer import WarehouseWriter

__all__ = ["WarehouseSink"]


class WarehouseSink:
    """Writes decoded ``hutong.std.*`` events and dead letters into their tables."""

    name = "warehouse"

    def __init__(self, warehouse: Warehouse, metrics: Metrics) -> None:
        self._writer = WarehouseWriter(warehouse)
        self._metrics = metrics

    def write(self, batch: Sequence[Decoded]) -> None:
        by_table: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for item in batch:
            if item.schema_name in TABLES:
                by_table[item.schema_name].append(item.record)
        for key, events in by_table.items():
            inserted = self._writer.write(key, events)
            table = TABLES[key].table
            self._metrics.sink_rows.labels(table).inc(inserted)
            self._metrics.sink_duplicates.labels(table).inc(len(events) - inserted)

    def close(self) -> None:
        """The hub owns the warehouse and closes it."""
