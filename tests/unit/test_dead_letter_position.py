"""A dead letter's row says where the letter is on hutong.dlq (migration 0010), so the
exchange monitor can read its bytes back for a retry: the warehouse keeps none."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sinks.warehouse.pseudonyms import Pseudonyms, protect
from sinks.warehouse.rows import TABLES


def letter() -> dict[str, Any]:
    return {"dead_letter_id": "dl-1", "stage": "producer", "reason": "no PID segment",
            "error_code": "100", "location": "PID", "facility_id": "F001",
            "source_topic": None, "source_partition": None, "source_offset": None,
            "original_key": b"F001|M1", "payload": b"MSH|^~\\&|...",
            "failed_at": datetime(2026, 12, 4, 1, 0, tzinfo=UTC)}


def row(spec_key: str, record: dict[str, Any], tables: Any = TABLES) -> dict[str, Any]:
    spec = tables[spec_key]
    return dict(zip(spec.column_names, spec.to_row(record), strict=True))


def test_the_sink_position_lands_in_the_row() -> None:
    spec = TABLES["dead-letter"]
    located = spec.locate(letter(), 3, 1234)
    assert (row("dead-letter", located)["dlq_partition"],
            row("dead-letter", located)["dlq_offset"]) == (3, 1234)
    assert "dlq_partition" not in letter()  # the record itself is left alone


def test_a_letter_written_without_a_position_has_none() -> None:
    values = row("dead-letter", letter())
    assert (values["dlq_partition"], values["dlq_offset"]) == (None, None)


def test_pseudonymised_rows_keep_the_position_not_the_bytes() -> None:
    tables = protect(TABLES, Pseudonyms(b"k" * 32))
    values = row("dead-letter", tables["dead-letter"].locate(letter(), 0, 7), tables)
    assert (values["dlq_partition"], values["dlq_offset"], values["payload"]) == (0, 7, b"")
    assert values["payload_size"] == len(letter()["payload"])


def test_event_tables_keep_no_position() -> None:
    event = {"event_id": "e-1"}
    assert TABLES["lab-result"].locate(event, 0, 1) is event
