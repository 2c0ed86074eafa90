"""The document store as a sink: ``hutong.std.*`` events in, shared documents out.

A ``document`` event is a CDA a facility sent: it is stored as received
(`assembly.received`). Every other event may be part of documents the hub
makes (a lab report from its results, a prescription from its orders):
`assembly.group_keys` names them, the event's raw Kafka value is kept as a part
of each, and each group a batch changed is assembled again from all its parts.
Nothing comes of it until assembly says the group makes a document; the same
content as the group's current version is no new version; other content is
version n+1, which replaces version n (both are kept).

A whole batch is one database transaction, so a sink killed before the runner
commits its offsets left either everything or nothing, and the replay finds
its parts and documents there already: no duplicate. A record assembly cannot
read, or a document id already stored with other content, is rejected (a dead
letter with the reason); a database failure raises, and the runner retries.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, Protocol

from hutong.errors import HutongError
from hutong.metrics import Metrics
from schemas import wire
from schemas.registry import EMBEDDED, Resolver
from sinks.base import Decoded, Rejected
from sinks.docstore.model import Document, Part
from sinks.docstore.store import DocumentStore, StoreWriter

__all__ = ["Assembly", "DocumentSink"]

_RECEIVED = "document"


class Assembly(Protocol):
    """What the sink needs of document assembly (`sinks.docstore.assembly`, pure)."""

    def group_keys(self, schema_name: str, record: dict[str, Any]) -> list[str]: ...

    def assemble(self, group_key: str, parts: Sequence[Part], *, version_number: int = 1,
                 replaces_document_id: str | None = None) -> Document | None: ...

    def received(self, record: dict[str, Any]) -> Document: ...


def _made_here() -> Assembly:
    """The hub's own assembly (imported late: the sink's tests may bring their own)."""
    from sinks.docstore import assembly

    return assembly


def _failure(doing: str, exc: Exception) -> str:
    """A rejection reason: what failed and the error's type (its text may quote values)."""
    if isinstance(exc, HutongError):
        return f"{doing}: {exc}"
    return f"{doing} failed ({type(exc).__name__})"


class DocumentSink:
    """Writes shared documents and their parts to a `DocumentStore`; see the module."""

    name = "documents"

    def __init__(self, store: DocumentStore, metrics: Metrics, ids: Resolver = EMBEDDED,
                 assembly: Assembly | None = None) -> None:
        self._store = store
        self._metrics = metrics
        self._ids = ids
        self._assembly: Assembly = assembly if assembly is not None else _made_here()

    def write(self, batch: Sequence[Decoded]) -> list[Rejected]:
        rejected: dict[int, str] = {}
        stored: Counter[str] = Counter()
        duplicates: Counter[str] = Counter()
        with self._store.writing() as writer:
            touched: dict[str, list[int]] = {}
            for n, item in enumerate(batch):
                if item.schema_name == _RECEIVED:
                    self._received(writer, n, item, rejected, stored, duplicates)
                    continue
                event_id = item.record.get("event_id")
                try:
                    keys = self._assembly.group_keys(item.schema_name, item.record)
                except Exception as exc:  # pure code failing on this record: it always will
                    rejected[n] = _failure("finding the documents of the event", exc)
                    continue
                if not keys:
                    continue
                if not item.raw or not isinstance(event_id, str):
                    rejected[n] = "an event without its raw value or event_id cannot be a part"
                    continue
                for key in keys:
                    if writer.add_part(key, event_id, item.schema_name, item.raw):
                        touched.setdefault(key, []).append(n)
                    else:
                        duplicates["part"] += 1
            for key, positions in touched.items():
                reason = self._assemble(writer, key, stored, duplicates)
                if reason is not None:
                    for n in positions:
                        rejected.setdefault(n, reason)
        for kind, count in stored.items():  # counted once the transaction is committed
            self._metrics.documents_stored.labels(kind).inc(count)
        for item_kind, count in duplicates.items():
            self._metrics.document_duplicates.labels(item_kind).inc(count)
        return [Rejected(batch[n], reason) for n, reason in sorted(rejected.items())]

    def _received(self, writer: StoreWriter, n: int, item: Decoded, rejected: dict[int, str],
                  stored: Counter[str], duplicates: Counter[str]) -> None:
        """A CDA a facility sent: stored as received, its replacement marking the old one."""
        try:
            document = self._assembly.received(item.record)
        except Exception as exc:  # pure code failing on this record: it always will
            rejected[n] = _failure("reading the received document", exc)
            return
        if not document.empi_id:
            rejected[n] = "the document is linked to no EMPI id"
            return
        outcome = writer.put(document)
        if outcome == "stored":
            stored[document.kind] += 1
        elif outcome == "duplicate":
            duplicates["document"] += 1
        else:
            rejected[n] = (f"document {document.document_id} is stored already with other "
                           "content; a correction must come as a new version that replaces it")

    def _assemble(self, writer: StoreWriter, key: str, stored: Counter[str],
                  duplicates: Counter[str]) -> str | None:
        """Make the group's document again from all its parts; the reason when it fails."""
        try:
            parts: list[Part] = []
            for _, raw in writer.parts(key):
                entry, record = wire.decode(raw, self._ids.by_id)
                parts.append((entry.name, record))
            current = writer.group(key)
            if current is None:
                document = self._assembly.assemble(key, parts)
            else:
                # The header carries the version, so compare like with like: the parts made
                # with the current version's numbers give its bytes again if nothing changed.
                again = self._assembly.assemble(
                    key, parts, version_number=current.version_number,
                    replaces_document_id=current.replaces_document_id)
                if again is None or again.content_sha256 == current.content_sha256:
                    duplicates["document"] += again is not None
                    return None
                document = self._assembly.assemble(
                    key, parts, version_number=current.version_number + 1,
                    replaces_document_id=current.document_id)
        except Exception as exc:  # pure code (or a part that no longer decodes)
            return _failure(f"assembling document group {key}", exc)
        if document is None:
            return None  # not a document yet (e.g. the report's results are not final)
        outcome = writer.put(document, group_key=key)
        if outcome == "stored":
            stored[document.kind] += 1
            return None
        if outcome == "duplicate":
            duplicates["document"] += 1
            return None
        return f"assembled document {document.document_id} clashes with a stored one"

    def close(self) -> None:
        """The hub owns the store and closes it."""
