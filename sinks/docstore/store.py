"""The shared-document store (共享文档库): SQLite by default, PostgreSQL when configured.

One SQLAlchemy Core code path serves both (`sinks.docstore.schema`). The
embedded hub keeps ``<data_dir>/documents.sqlite`` (WAL journal; a writing
transaction begins ``IMMEDIATE`` so it never meets a busy upgrade, readers never
wait for it); a
production hub names PostgreSQL in ``HUTONG_DOCSTORE_URL``
(``postgresql+psycopg://user@host/db``; a bare ``postgresql://`` gets psycopg).

Writes are idempotent: a part is stored once per (group, event id), and when
the same event comes again with other bytes the caller decides which delivery
stays (`StoreWriter.add_part`), so any delivery order ends the same; a document
is stored once per id. A document id seen again with the same content is a
duplicate; with other content it is a conflict the caller must not paper over.
A version that replaces another (CDA ``relatedDocument`` RPLC) marks the one it
replaces ``replaced_by`` and both stay: the history is kept. A received document
may replace only a document of the same facility, custodian, patient (EMPI id)
and set: another is ``unrelated``, refused, and hides nothing. A document whose
events no longer support it is ``withdrawn_at`` (`StoreWriter.withdraw`): kept
and readable by id, left out of the patient's index.

Errors surface as `DocumentStoreError` naming the failure's type only: driver
messages can quote the values of a row, which may be a patient's.
`DocumentDataError`, a subclass, is a row the database refused for its values (a
constraint, a value it cannot hold): writing it again will fail again, so the
sink makes it a dead letter rather than retrying the batch. `StoreWriter.savepoint`
lets one item's writes be undone without the rest of the transaction.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import (
    Connection,
    CursorResult,
    Engine,
    RowMapping,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from sqlalchemy.sql import Executable

from hutong.errors import DocumentStoreError
from sinks.docstore.audit_chain import GENESIS, row_hash, verify_rows
from sinks.docstore.model import Document
from sinks.docstore.schema import (
    MIGRATIONS,
    Migration,
    access_audit,
    access_audit_anchor,
    document_groups,
    document_parts,
    documents,
    schema_version,
)

__all__ = ["MIN_AUDIT_RETENTION_DAYS", "AccessRecord", "DocumentDataError", "DocumentStore",
           "GroupState", "Put", "StoreWriter", "StoredDocument", "open_store", "store_url"]

#: Access audit records are kept at least this long (six months), whatever is configured.
MIN_AUDIT_RETENTION_DAYS = 183
#: What writing a document did: new, already there (same content), an id with other
#: content, or a replacement naming a document of another facility, patient or set.
Put = Literal["stored", "duplicate", "conflict", "unrelated"]
#: SQLSTATE classes of a statement refused for its values: data exception, integrity
#: constraint violation, program limit exceeded (an index entry too large).
_REFUSED_STATES = ("22", "23", "54")

_MIGRATION_LOCK = 0x68757464  # pg_advisory_xact_lock key: one hub migrates at a time
_AUDIT_LOCK = 0x68756164  # and one writer extends the access audit's chain at a time
_READING = "hutong_reading"  # execution option of read-only connections
_SQLITE_FILE = "documents.sqlite"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class DocumentDataError(DocumentStoreError):
    """The database refused a row for its values: the same write will always fail."""


@dataclass(frozen=True, slots=True)
class StoredDocument:
    """One stored version: registry metadata, and the content when it was asked for."""

    document_id: str
    set_id: str | None
    version_number: int
    replaces_document_id: str | None
    replaced_by: str | None
    kind: str
    type_code: str
    type_name: str
    title: str
    empi_id: str
    facility_id: str
    effective_time: dt.datetime | None
    author_id: str | None
    custodian_id: str | None
    visit_number: str | None
    confidentiality_code: str | None
    sensitivity: frozenset[str]
    content_type: str
    content_sha256: str
    stored_at: dt.datetime
    content: bytes | None = None
    #: When its events stopped supporting it; None while it stands.
    withdrawn_at: dt.datetime | None = None

    @property
    def sensitive(self) -> bool:
        return bool(self.sensitivity)

    @property
    def withdrawn(self) -> bool:
        return self.withdrawn_at is not None

    @classmethod
    def from_row(cls, row: RowMapping) -> StoredDocument:
        values = dict(row)
        values["sensitivity"] = frozenset(s for s in (values["sensitivity"] or "").split(",")
                                          if s)
        if values.get("content") is not None:
            values["content"] = bytes(values["content"])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class GroupState:
    """A group's current version of one document set (what a re-assembly is compared with)."""

    set_id: str
    kind: str
    document_id: str
    version_number: int
    content_sha256: str
    replaces_document_id: str | None
    withdrawn: bool = False


@dataclass(frozen=True, slots=True)
class AccessRecord:
    """One read of patient documents, allowed or refused (审计: who, whose, what, when, why)."""

    principal: str
    roles: frozenset[str]
    action: Literal["index", "read"]
    purpose: str
    outcome: str
    empi_id: str | None = None
    document_id: str | None = None  # None: the patient's index was read
    client_address: str | None = None
    at: dt.datetime | None = None  # None: now, when written


def store_url(url: str | None, data_dir: Path) -> str:
    """The SQLAlchemy URL in use: ``url`` (PostgreSQL gets psycopg), else the SQLite file."""
    if url is None:
        return f"sqlite:///{(data_dir / _SQLITE_FILE).resolve()}"
    for bare in ("postgresql://", "postgres://"):
        if url.startswith(bare):
            return "postgresql+psycopg://" + url[len(bare):]
    return url


def _sqlite_pragmas(engine: Engine) -> None:
    """WAL journal, a busy wait, and transactions SQLAlchemy begins itself (immediately)."""

    @event.listens_for(engine, "connect")
    def connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # pysqlite must not begin or commit on its own
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(_READING)
                             else "BEGIN IMMEDIATE")


def open_store(url: str | None, data_dir: Path,
               clock: Callable[[], dt.datetime] = _now) -> DocumentStore:
    """Open (not migrate) the store: ``url`` if set, else SQLite under ``data_dir``."""
    full = store_url(url, data_dir)
    if url is None:
        data_dir.mkdir(parents=True, exist_ok=True)
    try:
        engine = create_engine(full, hide_parameters=True, pool_pre_ping=True)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise DocumentStoreError(f"cannot use the document store URL ({type(exc).__name__}); "
                                 "expected sqlite:///PATH or postgresql+psycopg://...") from None
    if engine.dialect.name == "sqlite":
        _sqlite_pragmas(engine)
    elif engine.dialect.name != "postgresql":
        engine.dispose()
        raise DocumentStoreError(f"the document store runs on SQLite or PostgreSQL, "
                                 f"not {engine.dialect.name}")
    return DocumentStore(engine, clock)


def _lock_chain(conn: Connection) -> None:
    """On PostgreSQL, one transaction at a time extends or cuts the access audit's chain."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _AUDIT_LOCK})


def _latest_hash(conn: Connection) -> str:
    a = access_audit.c
    latest = conn.execute(select(a.hash).where(a.hash.is_not(None))
                          .order_by(a.id.desc()).limit(1)).scalar()
    if latest is not None:
        return str(latest)
    anchor = conn.execute(select(access_audit_anchor.c.hash)).scalar()
    return str(anchor) if anchor is not None else GENESIS


def _chain_head(conn: Connection) -> str:
    """The hash a new access-audit row follows, under the chain's lock."""
    _lock_chain(conn)
    return _latest_hash(conn)


def _move_anchor(conn: Connection, last_hash: str, through: dt.datetime, count: int,
                 now: dt.datetime) -> None:
    anchor = access_audit_anchor.c
    updated = conn.execute(update(access_audit_anchor).where(anchor.id == 1).values(
        hash=last_hash, purged_through=through, purged_rows=anchor.purged_rows + count,
        updated_at=now))
    if not updated.rowcount:
        conn.execute(insert(access_audit_anchor).values(
            id=1, hash=last_hash, purged_through=through, purged_rows=count, updated_at=now))


def _refused(exc: SQLAlchemyError) -> bool:
    """Whether the database refused the statement for the values in it."""
    if isinstance(exc, DataError | IntegrityError):
        return True
    state = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return isinstance(state, str) and state[:2] in _REFUSED_STATES


@contextlib.contextmanager
def _translated(doing: str, *, detail: bool = False) -> Iterator[None]:
    """Database errors as DocumentStoreError (DocumentDataError for refused values),
    without the driver's text (it may quote a row's values) unless ``detail`` (no
    patient data involved: connecting, migrating)."""
    try:
        yield
    except SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None) or exc
        cause = type(orig).__name__
        if detail:
            cause += ": " + (str(orig).strip().splitlines() or [""])[0][:300]
        if _refused(exc):
            raise DocumentDataError(f"document store refused the values {doing} "
                                    f"({cause})") from None
        raise DocumentStoreError(f"document store failed {doing} ({cause})") from None


_METADATA = [c for c in documents.c if c.name != "content"]


def _related(document: Document | RowMapping, other: RowMapping) -> bool:
    """Whether one may replace the other: one facility, custodian, patient and set."""
    def get(source: Document | RowMapping, name: str) -> Any:
        return source[name] if isinstance(source, RowMapping) else getattr(source, name)
    same = all(get(document, name) == other[name]
               for name in ("facility_id", "custodian_id", "empi_id"))
    sets = get(document, "set_id"), other["set_id"]
    return same and (None in sets or sets[0] == sets[1])


_KIN = [documents.c[name] for name in ("document_id", "facility_id", "custodian_id", "empi_id",
                                       "set_id")]


class _Statements:
    """The writer's statements, built once per dialect with their values as parameters.

    SQLAlchemy finds a statement's compiled form by a cache key it computes once per
    statement object; a statement built again for each call (``select(...).where(c ==
    value)``) costs that and the building every time: 95 µs a primary-key read on
    SQLite here, against 16 µs for one built once. The document sink runs about five per
    document group.
    """

    def __init__(self, dialect: str, *, returning: bool = True) -> None:
        upsert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        p, d, g = document_parts.c, documents.c, document_groups.c
        #: Whether an insert says if it wrote a row by what it returns (else by its rowcount).
        self.returning = returning
        one_part = (p.group_key == bindparam("group")) & (p.event_id == bindparam("event"))
        self.part = select(p.payload).where(one_part)
        # Whether an INSERT ... ON CONFLICT DO NOTHING wrote a row is what it returns:
        # psycopg's rowcount is -1 for it when built once. SQLite before 3.35 has no
        # RETURNING; its rowcount says.
        add_part = upsert(document_parts).on_conflict_do_nothing(
            index_elements=["group_key", "event_id"])
        add_document = upsert(documents).on_conflict_do_nothing(index_elements=["document_id"])
        self.add_part: Executable = add_part.returning(p.event_id) if returning else add_part
        self.add_document: Executable = (add_document.returning(d.document_id) if returning
                                         else add_document)
        self.replace_part = update(document_parts).where(one_part).values(
            schema_name=bindparam("new_schema"), payload=bindparam("new_payload"),
            stored_at=bindparam("at"))
        self.parts_of = (select(p.group_key, p.schema_name, p.payload)
                         .where(p.group_key.in_(bindparam("groups", expanding=True)))
                         .order_by(p.group_key, p.schema_name, p.event_id))
        self.groups_of = (select(g.group_key, g.set_id, d.kind, g.document_id,
                                 g.version_number, g.content_sha256, d.replaces_document_id,
                                 d.withdrawn_at.is_not(None))
                          .join_from(document_groups, documents,
                                     g.document_id == d.document_id)
                          .where(g.group_key.in_(bindparam("groups", expanding=True)))
                          .order_by(g.group_key, g.set_id))
        self.withdraw = update(documents).where(
            (d.document_id == bindparam("id")) & d.withdrawn_at.is_(None)
        ).values(withdrawn_at=bindparam("at"))
        self.content_sha256 = select(d.content_sha256).where(d.document_id == bindparam("id"))
        self.kin = select(*_KIN).where(d.document_id == bindparam("id"))
        self.mark_replaced = update(documents).where(
            (d.document_id == bindparam("id")) & d.replaced_by.is_(None)
        ).values(replaced_by=bindparam("by"))
        self.successors = (select(*_KIN).where(d.replaces_document_id == bindparam("id"))
                           .order_by(d.version_number.desc(), d.stored_at))
        self.replaced_by = update(documents).where(d.document_id == bindparam("id")).values(
            replaced_by=bindparam("by"))
        group = upsert(document_groups)
        self.move_group = group.on_conflict_do_update(
            index_elements=["group_key", "set_id"],
            set_={name: group.excluded[name] for name in _GROUP_CURRENT})


_GROUP_CURRENT = ("document_id", "version_number", "content_sha256", "updated_at")
_STATEMENTS: dict[str, _Statements] = {}


class StoreWriter:
    """Writes within one transaction (`DocumentStore.writing`): all of it, or none."""

    def __init__(self, conn: Connection, clock: Callable[[], dt.datetime]) -> None:
        self._conn = conn
        self._clock = clock
        dialect = conn.dialect.name
        if dialect not in _STATEMENTS:
            # SQLite before 3.35 has no INSERT ... RETURNING; SQLAlchemy knows which has.
            _STATEMENTS[dialect] = _Statements(dialect,
                                               returning=conn.dialect.insert_returning)
        self._s = _STATEMENTS[dialect]

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        """The block's writes, undone (and the transaction usable again) if it raises."""
        with _translated("to begin a savepoint"):
            nested = self._conn.begin_nested()
        try:
            yield
        except BaseException:
            with _translated("to roll back to a savepoint"):
                nested.rollback()
            raise
        with _translated("to release a savepoint"):
            nested.commit()

    def part(self, group_key: str, event_id: str) -> bytes | None:
        """The stored value of one event of a group, if any."""
        with _translated("to read a part"):
            stored = self._conn.execute(self._s.part, {"group": group_key, "event": event_id}
                                        ).scalar_one_or_none()
        return None if stored is None else bytes(stored)

    def add_part(self, group_key: str, event_id: str, schema_name: str, payload: bytes, *,
                 supersedes: Callable[[bytes], bool]) -> bool:
        """Keep one event of a group; True when the group changed (a new or different part).

        The same event again with the same bytes changes nothing. With other bytes (the
        event processed again, e.g. after a code map was added) the stored part is replaced
        only when ``supersedes(stored bytes)`` says the new delivery wins: the order must be
        the one assembly reads parts by, so that every delivery order ends with the same part.
        """
        with _translated("to store a part"):
            added = self._inserted(self._conn.execute(self._s.add_part, {
                "group_key": group_key, "event_id": event_id, "schema_name": schema_name,
                "payload": payload, "stored_at": self._clock()}))
        if added:  # a new part, as most are: no read before
            return True
        stored = self.part(group_key, event_id)
        if stored is None or stored == payload or not supersedes(stored):
            return False
        with _translated("to store a part"):
            self._conn.execute(self._s.replace_part, {
                "group": group_key, "event": event_id, "new_schema": schema_name,
                "new_payload": payload, "at": self._clock()})
        return True

    def _inserted(self, result: CursorResult[Any]) -> bool:
        """Whether an insert that does nothing on a conflict wrote its row."""
        return result.first() is not None if self._s.returning else result.rowcount > 0

    def parts(self, group_key: str) -> list[tuple[str, bytes]]:
        """A group's parts as (schema name, raw value), in a fixed order."""
        return self.parts_of([group_key]).get(group_key, [])

    def parts_of(self, group_keys: Sequence[str]) -> dict[str, list[tuple[str, bytes]]]:
        """The parts of each group, read together, by group key (a group without parts is
        left out)."""
        found: dict[str, list[tuple[str, bytes]]] = {}
        for chunk in _chunks(group_keys):
            with _translated("to read parts"):
                rows = self._conn.execute(self._s.parts_of, {"groups": chunk}).all()
            for key, name, payload in rows:
                found.setdefault(key, []).append((name, bytes(payload)))
        return found

    def groups(self, group_key: str) -> list[GroupState]:
        """The group's current version of each of its document sets, by set id."""
        return self.groups_of([group_key]).get(group_key, [])

    def groups_of(self, group_keys: Sequence[str]) -> dict[str, list[GroupState]]:
        """:meth:`groups` of each group, read together, by group key (a group without
        documents is left out)."""
        found: dict[str, list[GroupState]] = {}
        for chunk in _chunks(group_keys):
            with _translated("to read a group"):
                rows = self._conn.execute(self._s.groups_of, {"groups": chunk}).all()
            for row in rows:
                found.setdefault(row[0], []).append(_group_state(row))
        return found

    def withdraw(self, document_id: str) -> bool:
        """Mark a version withdrawn (its events no longer support it); False if it was."""
        with _translated("to withdraw a document"):
            result = self._conn.execute(self._s.withdraw,
                                        {"id": document_id, "at": self._clock()})
        return bool(result.rowcount)

    def put(self, document: Document, group_key: str | None = None) -> Put:
        """Store one version; a group's current version of its set moves to it when
        ``group_key``. Without ``group_key`` (a received document) a replacement must be
        related to what it replaces (same facility, custodian, patient and set), else
        nothing is written: ``unrelated``."""
        with _translated("to store a document"):
            return self._put(document, group_key)

    def _stored_sha256(self, document_id: str) -> str | None:
        stored: str | None = self._conn.execute(self._s.content_sha256, {"id": document_id}
                                                ).scalar_one_or_none()
        return stored

    def _put(self, document: Document, group_key: str | None) -> Put:
        s = self._s
        checked = group_key is None  # the hub's own versions replace their own set
        if checked:  # nothing may be written before the replacement is known to be related
            stored = self._stored_sha256(document.document_id)
            if stored is not None:
                return "duplicate" if stored == document.content_sha256 else "conflict"
            if document.replaces_document_id is not None:
                replaced = self._conn.execute(s.kin, {"id": document.replaces_document_id}
                                              ).mappings().first()
                if replaced is not None and not _related(document, replaced):
                    return "unrelated"
        now = self._clock()
        if not self._inserted(self._conn.execute(s.add_document, _row(document, now))):
            stored = self._stored_sha256(document.document_id)  # there already
            if stored is None:  # and gone again (another writer): try again
                return self._put(document, group_key)
            return "duplicate" if stored == document.content_sha256 else "conflict"
        if document.replaces_document_id is not None:
            self._conn.execute(s.mark_replaced, {"id": document.replaces_document_id,
                                                 "by": document.document_id})
        successors = self._conn.execute(  # its replacement arrived first
            s.successors, {"id": document.document_id}).mappings().all()
        successor = next((row["document_id"] for row in successors
                          if not checked or _related(document, row)), None)
        if successor is not None:
            self._conn.execute(s.replaced_by, {"id": document.document_id, "by": successor})
        if group_key is not None:
            self._conn.execute(s.move_group, {
                "group_key": group_key, "set_id": document.set_id or "",
                "document_id": document.document_id, "version_number": document.version_number,
                "content_sha256": document.content_sha256, "updated_at": now})
        return "stored"


def _group_state(row: Any) -> GroupState:
    """A row of the group statements: the group key, then the state."""
    _, set_id, kind, document_id, version, sha256, replaces, gone = row
    return GroupState(set_id, kind, document_id, version, sha256, replaces, bool(gone))


#: Group keys in one ``IN`` list (SQLite allows 32,766 parameters, PostgreSQL 65,535).
_IN_CHUNK = 500


def _chunks(keys: Sequence[str]) -> Iterator[list[str]]:
    for start in range(0, len(keys), _IN_CHUNK):
        yield list(keys[start:start + _IN_CHUNK])


def _row(document: Document, now: dt.datetime) -> dict[str, Any]:
    return {
        "document_id": document.document_id, "set_id": document.set_id,
        "version_number": document.version_number,
        "replaces_document_id": document.replaces_document_id, "replaced_by": None,
        "kind": document.kind, "type_code": document.type_code,
        "type_name": document.type_name, "title": document.title,
        "empi_id": document.empi_id, "facility_id": document.facility_id,
        "effective_time": document.effective_time, "author_id": document.author_id,
        "custodian_id": document.custodian_id, "visit_number": document.visit_number,
        "confidentiality_code": document.confidentiality_code,
        "sensitivity": ",".join(sorted(document.sensitivity)),
        "content_type": document.content_type, "content": document.content,
        "content_sha256": document.content_sha256, "stored_at": now, "withdrawn_at": None,
    }


class DocumentStore:
    """Documents, their parts and the access audit, in SQLite or PostgreSQL."""

    def __init__(self, engine: Engine, clock: Callable[[], dt.datetime] = _now) -> None:
        self.engine = engine
        self._clock = clock

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    def migrate(self, migrations: Sequence[Migration] = MIGRATIONS) -> list[str]:
        """Apply the migrations not applied yet, in order; the names of those applied."""
        applied: list[str] = []
        with _translated("to migrate", detail=True), self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                             {"key": _MIGRATION_LOCK})
            schema_version.create(conn, checkfirst=True)
            done = set(conn.execute(select(schema_version.c.version)).scalars())
            known = {number for number, _, _ in migrations}
            if done - known:
                raise DocumentStoreError(
                    f"the document store is at schema version {max(done)}, newer than this "
                    f"hutong knows ({max(known)}); run the newer hutong")
            for number, name, step in sorted(migrations, key=lambda m: m[0]):
                if number in done:
                    continue
                step(conn)
                conn.execute(insert(schema_version).values(version=number, name=name,
                                                           applied_at=self._clock()))
                applied.append(name)
        return applied

    def _reading(self) -> Connection:
        return self.engine.connect().execution_options(**{_READING: True})

    @contextlib.contextmanager
    def writing(self) -> Iterator[StoreWriter]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        with _translated("to write"), self.engine.begin() as conn:
            yield StoreWriter(conn, self._clock)

    def put(self, document: Document) -> Put:
        """Store one document in a transaction of its own."""
        with self.writing() as writer:
            return writer.put(document)

    def index(self, empi_id: str, *, type_code: str | None = None,
              facility_id: str | None = None, since: dt.datetime | None = None,
              until: dt.datetime | None = None, include_replaced: bool = False,
              include_withdrawn: bool = False, limit: int = 100,
              offset: int = 0) -> list[StoredDocument]:
        """A patient's documents, newest effective time first, without their content;
        replaced and withdrawn versions only when asked for."""
        d = documents.c
        query = select(*_METADATA).where(d.empi_id == empi_id)
        if type_code:
            query = query.where(d.type_code == type_code)
        if facility_id:
            query = query.where(d.facility_id == facility_id)
        if since is not None:
            query = query.where(d.effective_time >= since)
        if until is not None:
            query = query.where(d.effective_time < until)
        if not include_replaced:
            query = query.where(d.replaced_by.is_(None))
        if not include_withdrawn:
            query = query.where(d.withdrawn_at.is_(None))
        query = (query.order_by(d.effective_time.desc().nulls_last(), d.document_id)
                 .limit(limit).offset(offset))
        with _translated("to list documents"), self._reading() as conn:
            return [StoredDocument.from_row(row) for row in conn.execute(query).mappings()]

    def get(self, document_id: str) -> StoredDocument | None:
        """One version, with its content."""
        with _translated("to read a document"), self._reading() as conn:
            row = conn.execute(select(documents).where(
                documents.c.document_id == document_id)).mappings().first()
        return StoredDocument.from_row(row) if row is not None else None

    def versions(self, set_id: str) -> list[StoredDocument]:
        """Every stored version of a document set, oldest first, without content."""
        d = documents.c
        with _translated("to list versions"), self._reading() as conn:
            rows = conn.execute(select(*_METADATA).where(d.set_id == set_id)
                                .order_by(d.version_number, d.stored_at)).mappings()
            return [StoredDocument.from_row(row) for row in rows]

    def count(self, table: str = "documents") -> int:
        """Rows in one of the store's tables (for operators and tests)."""
        chosen = {t.name: t for t in (documents, document_parts, document_groups,
                                      access_audit)}[table]
        with _translated("to count"), self._reading() as conn:
            return int(conn.execute(select(func.count()).select_from(chosen)).scalar_one())

    def record_access(self, record: AccessRecord) -> None:
        """Write one audit record; raises if it cannot (then nothing may be shown)."""
        values = {
            "at": record.at or self._clock(), "principal": record.principal[:128],
            "roles": ",".join(sorted(record.roles))[:128],
            "empi_id": record.empi_id[:64] if record.empi_id else record.empi_id,
            "document_id": record.document_id[:256] if record.document_id else None,
            "action": record.action, "purpose": record.purpose[:32],
            "outcome": record.outcome[:16],
            "client_address": record.client_address[:64] if record.client_address else None}
        with _translated("to write the access audit"), self.engine.begin() as conn:
            prev = _chain_head(conn)  # SQLite: BEGIN IMMEDIATE already serialises writers
            values.update(prev_hash=prev, hash=row_hash(values, prev))
            conn.execute(insert(access_audit).values(**values))

    def audit_head(self) -> str:
        """The hash of the newest access-audit row (the anchor or GENESIS when none)."""
        with _translated("to read the access audit"), self._reading() as conn:
            return _latest_hash(conn)

    def verify_audit(self) -> tuple[int, int]:
        """Check the access audit's hash chain: (rows chained, rows from before the
        chain), or DocumentStoreError naming the first row that breaks it."""
        a = access_audit.c
        with _translated("to verify the access audit"), self._reading() as conn:
            anchor = conn.execute(select(access_audit_anchor.c.hash)).scalar()
            rows = conn.execute(select(access_audit).order_by(a.id)
                                .execution_options(yield_per=1000))
            try:
                return verify_rows(rows.mappings(), anchor)
            finally:
                rows.close()  # a server-side cursor on PostgreSQL, left mid-way on a break

    def access_records(self, *, empi_id: str | None = None,
                       limit: int = 1000) -> list[AccessRecord]:
        """Audit records, oldest first; only those about ``empi_id`` when given."""
        a = access_audit.c
        query = select(access_audit).order_by(a.at, a.id).limit(limit)
        if empi_id is not None:
            query = query.where(a.empi_id == empi_id)
        with _translated("to read the access audit"), self._reading() as conn:
            rows = conn.execute(query).mappings().all()
        return [AccessRecord(principal=r["principal"],
                             roles=frozenset(x for x in r["roles"].split(",") if x),
                             action=r["action"], purpose=r["purpose"], outcome=r["outcome"],
                             empi_id=r["empi_id"], document_id=r["document_id"],
                             client_address=r["client_address"], at=r["at"]) for r in rows]

    def purge_audit(self, retention_days: int, now: dt.datetime | None = None) -> int:
        """Delete audit records older than ``retention_days`` (at least 183); how many.

        Only the oldest rows go, up to the first one inside the retention (by id, so the
        chain stays whole); the hash of the last row deleted becomes the anchor where
        the chain of the rows kept begins.
        """
        if retention_days < MIN_AUDIT_RETENTION_DAYS:
            raise ValueError(f"access audit records are kept at least "
                             f"{MIN_AUDIT_RETENTION_DAYS} days, not {retention_days}")
        moment = now or self._clock()
        cutoff = moment - dt.timedelta(days=retention_days)
        a = access_audit.c
        with _translated("to purge the access audit"), self.engine.begin() as conn:
            _lock_chain(conn)
            first_kept = conn.execute(select(func.min(a.id)).where(a.at >= cutoff)).scalar()
            doomed = a.id < first_kept if first_kept is not None else a.at < cutoff
            last = conn.execute(select(a.id, a.hash, a.at).where(doomed)
                                .order_by(a.id.desc()).limit(1)).mappings().first()
            if last is None:
                return 0
            count = int(conn.execute(delete(access_audit).where(doomed)).rowcount)
            if last["hash"] is not None:
                _move_anchor(conn, last["hash"], last["at"], count, moment)
        return count

    def close(self) -> None:
        self.engine.dispose()
