"""Shared pieces of the document store tests: stores on both databases, documents, events.

``store_on(backend, tmp_path)`` opens a migrated store on SQLite (a file under
``tmp_path``) or PostgreSQL (a schema of its own in the machine's database
``test``, dropped afterwards: ``postgres_schema``; ``HUTONG_TEST_POSTGRES_URL``
names another server).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from schemas import catalog, wire
from sinks.base import Decoded
from sinks.docstore.model import CDA_MEDIA_TYPE, Document
from sinks.docstore.store import DocumentStore, open_store
from tests.warehouse_events import SAMPLES

POSTGRES_URL = os.environ.get("HUTONG_TEST_POSTGRES_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BACKENDS = ["sqlite", "postgresql"]
PATIENT_NAME = "张三"
WHEN = dt.datetime(2026, 3, 1, 8, 30, tzinfo=dt.UTC)


@contextlib.contextmanager
def postgres_schema() -> Iterator[str]:
    """A store URL on a PostgreSQL schema of its own, dropped with all in it afterwards."""
    schema = f"hutong_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    joiner = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{joiner}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@contextlib.contextmanager
def store_on(backend: str, tmp_path: Path) -> Iterator[DocumentStore]:
    """A migrated store on ``backend``, closed (and its PostgreSQL schema dropped) after."""
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(postgres_schema()) if backend == "postgresql" else None
        store = open_store(url, tmp_path)
        stack.callback(store.close)
        store.migrate()
        yield store


def cda(document_id: str, body: str = "", *, encoding: str = "UTF-8") -> bytes:
    """A small CDA document naming the patient (as real ones do)."""
    root, _, extension = document_id.partition("^")
    return (f'<?xml version="1.0" encoding="{encoding}"?>\n'
            f'<ClinicalDocument xmlns="urn:hl7-org:v3"><id root="{root}" '
            f'extension="{extension}"/><title>门诊病历</title><recordTarget><patientRole>'
            f"<patient><name>{PATIENT_NAME}</name></patient></patientRole></recordTarget>"
            f"<component>{body}</component></ClinicalDocument>").encode(encoding)


def make_document(document_id: str = "2.16.156.10011.1.1^DOC-1", *, empi_id: str = "E-42",
                  body: str = "", **overrides: Any) -> Document:
    """A received document with registry metadata and a matching content hash."""
    content = overrides.pop("content", None) or cda(document_id, body)
    values: dict[str, Any] = {
        "document_id": document_id, "kind": "received", "type_code": "C0003",
        "type_name": "门(急)诊病历", "title": "门诊病历", "empi_id": empi_id,
        "facility_id": "F001", "content": content, "content_type": CDA_MEDIA_TYPE,
        "content_sha256": hashlib.sha256(content).hexdigest(), "effective_time": WHEN,
        "set_id": "2.16.156.10011.1.1^SET-1", "author_id": "D-1",
        "custodian_id": "12110000400000000X", "visit_number": "MZ-0001",
        "confidentiality_code": "N"}
    return Document(**(values | overrides))


def document_event(document_id: str = "2.16.156.10011.1.1^DOC-1", *, version: int = 1,
                   replaces: str | None = None, body: str = "", **overrides: Any
                   ) -> dict[str, Any]:
    """A ``document`` std event carrying a received CDA."""
    content = cda(document_id, body)
    return SAMPLES["document"](
        event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{document_id}:{body}")),
        document_id=document_id, version_number=version, replaces_document_id=replaces,
        content=content, content_sha256=hashlib.sha256(content).hexdigest(),
        content_type="text/xml", effective_time=WHEN) | overrides


def decoded(kind: str, record: dict[str, Any], offset: int = 0) -> Decoded:
    """A std event as the sink gets it: framed on the wire, read back from it."""
    value = wire.encode(catalog.schema(kind), record)
    entry, back = wire.decode(value)
    return Decoded(f"hutong.std.{kind}", 0, offset, entry.name, back, raw=value)
