"""Idempotent batch writes of events to their warehouse tables.

Delivery is at least once, so the same event can arrive twice in one batch, in
a later batch, or in a replay. `WarehouseWriter.write` keeps the first of each
id within a batch, asks the table which ids it already holds, and inserts the
rest in one statement. ReplacingMergeTree would collapse duplicates too, but
only at some later merge; this way ``count()`` is right at once.

The existence check assumes one writer per table partition at a time, as Kafka
gives each partition to one consumer; should two writers race, the table's
ReplacingMergeTree key still collapses the pair at the next merge.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hutong.errors import WarehouseError
from sinks.warehouse.client import Warehouse
from sinks.warehouse.rows import TABLES, TableSpec

__all__ = ["WarehouseWriter"]

_EXISTING_IDS = (
    "SELECT {id:Identifier} FROM {table:Identifier} WHERE {id:Identifier} IN {ids:Array(String)}"
)


class WarehouseWriter:
    """Writes batches of events to the tables named in `tables` (default: `rows.TABLES`).

    `lookup_chunk` bounds the ids sent in one existence query, keeping the
    query (a URL parameter over HTTP) small for large batches.
    """

    def __init__(
        self,
        wh: Warehouse,
        tables: Mapping[str, TableSpec] = TABLES,
        *,
        lookup_chunk: int = 2000,
    ) -> None:
        self._wh = wh
        self._tables = tables
        self._lookup_chunk = lookup_chunk

    def write(self, table_key: str, events: Sequence[Mapping[str, Any]]) -> int:
        """Insert the events not yet in the table of `table_key`; return how many were inserted."""
        spec = self._spec(table_key)
        return self.write_rows(table_key, [spec.to_row(event) for event in events])

    def write_rows(self, table_key: str, rows: Sequence[tuple[Any, ...]]) -> int:
        """Like ``write``, for rows already made with the table's ``to_row``."""
        spec = self._spec(table_key)
        batch: dict[str, tuple[Any, ...]] = {}
        id_index = spec.column_names.index(spec.id_column)
        for row in rows:
            batch.setdefault(row[id_index], row)
        if not batch:
            return 0
        existing = self._existing_ids(spec, list(batch))
        new_rows = [row for row_id, row in batch.items() if row_id not in existing]
        if new_rows:
            self._wh.insert(spec.table, new_rows, spec.column_names)
        return len(new_rows)

    def _spec(self, table_key: str) -> TableSpec:
        try:
            return self._tables[table_key]
        except KeyError:
            known = ", ".join(sorted(self._tables))
            raise WarehouseError(
                f"no warehouse table for event type {table_key!r} (known: {known})"
            ) from None

    def _existing_ids(self, spec: TableSpec, ids: list[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(ids), self._lookup_chunk):
            chunk = ids[start : start + self._lookup_chunk]
            _, rows = self._wh.query_rows(
                _EXISTING_IDS, {"id": spec.id_column, "table": spec.table, "ids": chunk}
            )
            found.update(str(row[0]) for row in rows)
        return found
