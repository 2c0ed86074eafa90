"""The document store's tables (SQLAlchemy Core) and their ordered migrations.

One definition serves SQLite and PostgreSQL. Times are stored in UTC and read
back as aware UTC datetimes on both (`UtcDateTime`); binary columns hold bytes
exactly as they came.

``documents``        one row per version of a shared document, with its registry metadata;
                     ``withdrawn_at`` set when the events no longer support it
``document_parts``   the events a made document is assembled from (raw Kafka values)
``document_groups``  each group's current version per document set (a visit can make
                     two documents): what a new part is compared with
``access_audit``     who read whose documents, when, why, and what they were given;
                     each row chained to the one before by hash (``prev_hash``, ``hash``)
``access_audit_anchor``  the hash of the last row a retention purge deleted, where the
                     chain of the rows kept begins
``schema_version``   the migrations applied, by number

What facilities send (ids, codes, visit numbers) is stored as unbounded text: a
value longer than a column's length would make PostgreSQL refuse the row
(SQLite never checks), and the sink would retry that batch for ever. What the
store indexes is bounded before it gets here instead (assembly refuses group
keys and ids over 512 characters, well inside an index entry). Only the access
audit keeps bounded columns: the store cuts its values to fit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Dialect,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    inspect,
    text,
)

__all__ = ["MIGRATIONS", "Migration", "UtcDateTime", "access_audit", "access_audit_anchor",
           "document_groups", "document_parts", "documents", "metadata", "schema_version"]


class UtcDateTime(TypeDecorator[dt.datetime]):
    """A point in time, stored as UTC; a naive value is taken to be UTC already."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None,
                           dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        utc = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
        # SQLite keeps text: the same zone-less UTC form everywhere keeps comparisons right.
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: dt.datetime | None,
                             dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


metadata = MetaData()

#: SQLite numbers rows itself only for an INTEGER PRIMARY KEY.
_ROW_ID = BigInteger().with_variant(Integer(), "sqlite")

schema_version = Table(
    "schema_version", metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("name", String(128), nullable=False),
    Column("applied_at", UtcDateTime, nullable=False),
)

documents = Table(
    "documents", metadata,
    Column("document_id", Text, primary_key=True),
    Column("set_id", Text),
    Column("version_number", Integer, nullable=False),
    Column("replaces_document_id", Text),
    Column("replaced_by", Text),
    Column("kind", Text, nullable=False),
    Column("type_code", Text, nullable=False),
    Column("type_name", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("empi_id", Text, nullable=False),
    Column("facility_id", Text, nullable=False),
    Column("effective_time", UtcDateTime),
    Column("author_id", Text),
    Column("custodian_id", Text),
    Column("visit_number", Text),
    Column("confidentiality_code", Text),
    Column("sensitivity", Text, nullable=False, default=""),  # sorted, comma-separated
    Column("content_type", Text, nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("content_sha256", Text, nullable=False),
    Column("stored_at", UtcDateTime, nullable=False),
    # when the events stopped supporting it (all lines cancelled, the visit cancelled...)
    Column("withdrawn_at", UtcDateTime),
    Index("documents_by_patient", "empi_id", "effective_time"),
    Index("documents_by_set", "set_id"),
    Index("documents_by_replaced", "replaces_document_id"),
)

document_parts = Table(
    "document_parts", metadata,
    Column("group_key", Text, primary_key=True),
    Column("event_id", Text, primary_key=True),
    Column("schema_name", Text, nullable=False),
    Column("payload", LargeBinary, nullable=False),  # the Kafka value, Confluent wire format
    Column("stored_at", UtcDateTime, nullable=False),
)

document_groups = Table(
    "document_groups", metadata,
    Column("group_key", Text, primary_key=True),
    Column("set_id", Text, primary_key=True),
    Column("document_id", Text, nullable=False),
    Column("version_number", Integer, nullable=False),
    Column("content_sha256", Text, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

access_audit = Table(
    "access_audit", metadata,
    Column("id", _ROW_ID, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime, nullable=False),
    Column("principal", String(128), nullable=False),
    Column("roles", String(128), nullable=False),
    Column("empi_id", String(64)),
    Column("document_id", String(256)),  # null: the patient's index was read
    Column("action", String(16), nullable=False),
    Column("purpose", String(32), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("client_address", String(64)),
    # migration 2: SHA-256 of the row before (or the anchor) and of this row with it
    Column("prev_hash", String(64)),
    Column("hash", String(64)),
    Index("access_audit_by_time", "at"),
    Index("access_audit_by_patient", "empi_id", "at"),
)

access_audit_anchor = Table(
    "access_audit_anchor", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # always 1
    Column("hash", String(64), nullable=False),  # of the last row purged
    Column("purged_through", UtcDateTime, nullable=False),  # that row's time
    Column("purged_rows", BigInteger, nullable=False),  # all purges together
    Column("updated_at", UtcDateTime, nullable=False),
)

#: One step of the schema: its number, a name, and what it does on an open transaction.
Migration = tuple[int, str, Callable[[Connection], Any]]


def _documents_parts_groups_audit(conn: Connection) -> None:
    metadata.create_all(conn, tables=[documents, document_parts, document_groups,
                                      access_audit], checkfirst=True)


def _access_audit_chain(conn: Connection) -> None:
    """The hash chain of the access audit. Migration 1 builds ``access_audit`` from the
    table as declared now, so a store made since has the columns already; an older one
    gets them here (its earlier rows stay without a hash: the chain begins after them)."""
    present = {column["name"] for column in inspect(conn).get_columns("access_audit")}
    for name in ("prev_hash", "hash"):
        if name not in present:
            conn.execute(text(f"ALTER TABLE access_audit ADD COLUMN {name} VARCHAR(64)"))
    metadata.create_all(conn, tables=[access_audit_anchor], checkfirst=True)


#: Applied in order, each once; a new step gets the next number and never changes after
#: it has shipped. Migration 1 was changed in place once, before any release carried it:
#: text instead of bounded strings, ``documents.withdrawn_at``, and ``document_groups``
#: keyed by group and set. A development store made before that is deleted (or its
#: schema dropped) and rebuilt by a replay from Kafka.
MIGRATIONS: list[Migration] = [
    (1, "documents_parts_groups_audit", _documents_parts_groups_audit),
    (2, "access_audit_chain", _access_audit_chain),
]
