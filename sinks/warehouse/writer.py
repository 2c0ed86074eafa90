"""Idempotent batch writes of events to their warehouse tables.

Delivery is at least once, so the same event can arrive twice in one batch, in
a later batch, or in a replay. `WarehouseWriter.write` keeps the last of each
id within a batch, asks the table which ids it already holds, and inserts the
rest in one statement. ReplacingMergeTree would collapse duplicates too, but
only at some later merge; this way ``count()`` is right at once.

An event processed again differently (``hutong replay`` after a code map or a
practitioner was added: its ``map_version`` or its ``practitioner_id`` and
``practitioner_status`` differ) replaces its row: the old row is deleted
(a lightweight ``DELETE``) and the new one inserted, so the warehouse is
corrected without a duplicate.

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
    "SELECT {{id:Identifier}}, {versions} FROM {{table:Identifier}} "
    "WHERE {{id:Identifier}} IN {{ids:Array(String)}}"
)
_DELETE_IDS = "DELETE FROM {table:Identifier} WHERE {id:Identifier} IN {ids:Array(String)}"


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
        return sum(self.write_changes(table_key, rows))

    def write_changes(self, table_key: str, rows: Sequence[tuple[Any, ...]], *,
                      new_ids: set[str] | None = None) -> tuple[int, int]:
        """Insert new rows and replace reprocessed ones; (inserted, replaced). The ids of
        the rows inserted for the first time are added to ``new_ids`` when given."""
        spec = self._spec(table_key)
        batch: dict[str, tuple[Any, ...]] = {}
        id_index = spec.column_names.index(spec.id_column)
        version_at = [spec.column_names.index(name) for name in spec.version_columns]
        for row in rows:
            batch[row[id_index]] = row  # the last copy: a replay comes after the original
        if not batch:
            return 0, 0
        existing = self._existing(spec, list(batch))
        new_rows = [row for row_id, row in batch.items() if row_id not in existing]
        replaced = [row for row_id, row in batch.items() if row_id in existing and version_at
                    and existing[row_id] != tuple(row[i] for i in version_at)]
        if replaced:
            self._delete(spec, [row[id_index] for row in replaced])
        if new_rows or replaced:
            self._wh.insert(spec.table, new_rows + replaced, spec.column_names)
        if new_ids is not None:
            new_ids.update(str(row[id_index]) for row in new_rows)
        return len(new_rows), len(replaced)

    def _spec(self, table_key: str) -> TableSpec:
        try:
            return self._tables[table_key]
        except KeyError:
            known = ", ".join(sorted(self._tables))
            raise WarehouseError(
                f"no warehouse table for event type {table_key!r} (known: {known})"
            ) from None

    def _existing(self, spec: TableSpec, ids: list[str]) -> dict[str, Any]:
        """The ids the table holds, each with its version columns' values (a tuple)."""
        found: dict[str, Any] = {}
        versions = spec.version_columns or (spec.id_column,)
        sql = _EXISTING_IDS.format(versions=", ".join(f"`{name}`" for name in versions))
        for start in range(0, len(ids), self._lookup_chunk):
            chunk = ids[start : start + self._lookup_chunk]
            _, rows = self._wh.query_rows(
                sql, {"id": spec.id_column, "table": spec.table, "ids": chunk})
            for row_id, *row_versions in rows:
                found[str(row_id)] = tuple(row_versions) if spec.version_columns else None
        return found

    def _delete(self, spec: TableSpec, ids: list[str]) -> None:
        for start in range(0, len(ids), self._lookup_chunk):
            self._wh.command(_DELETE_IDS, {"table": spec.table, "id": spec.id_column,
                                           "ids": ids[start : start + self._lookup_chunk]})
