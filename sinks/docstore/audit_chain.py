"""Tamper evidence of the document access audit: each row chained to the one before.

A row's ``hash`` is SHA-256 of its canonical JSON (every audited column, the time
in UTC to the microsecond, and ``prev_hash``); ``prev_hash`` is the hash of the
row before it by id, or of the anchor where a retention purge cut the rows before
it (`sinks.docstore.schema.access_audit_anchor`), or :data:`GENESIS`. An edited,
deleted or reordered row breaks the chain, which :func:`verify_rows` names.

Pure: the store (`sinks.docstore.store`) reads and writes the rows.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from hutong.audit import GENESIS
from hutong.errors import DocumentStoreError

__all__ = ["CHAINED", "GENESIS", "row_hash", "verify_rows"]

#: The columns a row's hash covers, besides ``prev_hash``.
CHAINED = ("at", "principal", "roles", "empi_id", "document_id", "action", "purpose",
           "outcome", "client_address")


def _canonical(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        moment = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value
        return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value


def row_hash(values: Mapping[str, Any], prev_hash: str) -> str:
    """The hash of one access-audit row, given the hash it follows."""
    body = {name: _canonical(values.get(name)) for name in CHAINED}
    body["prev_hash"] = prev_hash
    text = json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def verify_rows(rows: Iterable[Mapping[Any, Any]], anchor: str | None) -> tuple[int, int]:
    """Check rows in id order against the chain that begins at ``anchor`` (GENESIS when
    nothing was purged); (rows chained, rows older than the chain), or DocumentStoreError
    naming the first row that does not follow."""
    expected = anchor or GENESIS
    chained = unchained = 0
    for row in rows:
        if row["hash"] is None:
            if chained:
                raise DocumentStoreError(f"access audit: row {row['id']} has no hash after "
                                         "the chain began (inserted behind the store's back)")
            unchained += 1  # written before migration 2 gave the table its chain
            continue
        if row["prev_hash"] != expected or row["hash"] != row_hash(row, expected):
            raise DocumentStoreError(f"access audit: row {row['id']} ({_canonical(row['at'])}) "
                                     "breaks the chain")
        expected = row["hash"]
        chained += 1
    return chained, unchained
