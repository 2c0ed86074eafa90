"""The document store as a sink: ``hutong.std.*`` events in, shared documents out.

A ``document`` event is a CDA a facility sent: it is stored as received
(`assembly.received`); one that names as replaced a document of another
facility, custodian, patient or set is rejected and hides nothing. Every other
event may be part of documents the hub makes (a lab report from its results, a
prescription from its orders): `assembly.group_keys` names them, the event's
raw Kafka value is kept as a part of each (of two deliveries of one event, the
one `assembly.supersedes` prefers, so redeliveries and replays in any order end
the same), and each group a batch changed is assembled again from all its
parts. Nothing comes of it until assembly says the group makes a document; the
same content as the current version of its set is no new version; other
content is version n+1, which replaces version n (both are kept). A kind of
document the parts no longer support (`assembly.withdrawn`: every line
cancelled, the visit cancelled...) has its current version withdrawn; a later
assembly that succeeds again makes version n+1.

A whole batch is one database transaction, so a sink killed before the runner
commits its offsets left either everything or nothing, and the replay finds
its parts and documents there already: no duplicate. Each received document is
written under a savepoint, and the batch's groups under one together (their
parts added, then the changed groups' parts and documents read in one query
each); should any group be refused, that savepoint is rolled back and each group
is written again under its own: when an event cannot be used (assembly fails on
it, the database refuses its values, a document id already stored with other
content) its writes are rolled back and it is rejected (a dead letter with the
reason), while the other events of its group still make their document. As a
rejected event leaves no part behind, a replay rejects it again: a dead letter
lost in a crash before it was published comes back. A database failure raises,
and the runner retries the batch.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from hutong.errors import HutongError
from hutong.metrics import Metrics
from schemas import wire
from schemas.registry import EMBEDDED, Resolver
from sinks.base import Decoded, Rejected
from sinks.docstore.model import Document, Part
from sinks.docstore.store import DocumentDataError, DocumentStore, GroupState, StoreWriter

__all__ = ["Assembly", "DocumentSink"]

_RECEIVED = "document"


class Assembly(Protocol):
    """What the sink needs of document assembly (`sinks.docstore.assembly`, pure)."""

    def group_keys(self, schema_name: str, record: dict[str, Any]) -> list[str]: ...

    def supersedes(self, new: dict[str, Any], stored: dict[str, Any]) -> bool: ...

    def assemble(self, group_key: str, parts: Sequence[Part], *, version_number: int = 1,
                 replaces_document_id: str | None = None) -> Document | None: ...

    def withdrawn(self, group_key: str, parts: Sequence[Part]) -> Collection[str]: ...

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


class _Refused(Exception):
    """One item or group cannot be written; its savepoint is rolled back."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@contextlib.contextmanager
def _refusing(key: str) -> Iterator[None]:
    """Values the database refuses anywhere in a group's writes: that group's problem."""
    try:
        yield
    except DocumentDataError as exc:
        raise _Refused(_failure(f"writing document group {key}", exc)) from None


@dataclass
class _Tally:
    """What a write did, counted once its savepoint (and the transaction) holds."""

    stored: Counter[str] = field(default_factory=Counter)
    duplicates: Counter[str] = field(default_factory=Counter)

    def add(self, other: _Tally) -> None:
        self.stored.update(other.stored)
        self.duplicates.update(other.duplicates)


_UNRELATED = ("it names as replaced a document of another facility or patient; a "
              "replacement (RPLC) is honoured only within one custodian, patient and set")


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
        tally = _Tally()
        with self._store.writing() as writer:
            members: dict[str, list[int]] = {}
            for n, item in enumerate(batch):
                if item.schema_name == _RECEIVED:
                    if (reason := self._received(writer, item, tally)) is not None:
                        rejected[n] = reason
                    continue
                try:
                    keys = self._assembly.group_keys(item.schema_name, item.record)
                except Exception as exc:  # pure code failing on this record: it always will
                    rejected[n] = _failure("finding the documents of the event", exc)
                    continue
                if not keys:
                    continue
                if not item.raw or not isinstance(item.record.get("event_id"), str):
                    rejected[n] = "an event without its raw value or event_id cannot be a part"
                    continue
                for key in keys:
                    members.setdefault(key, []).append(n)
            if not self._all_groups(writer, members, batch, tally):
                for key, positions in members.items():
                    for n, reason in self._group(writer, key, positions, batch, tally).items():
                        rejected.setdefault(n, reason)
        for kind, count in tally.stored.items():  # counted once the transaction is committed
            self._metrics.documents_stored.labels(kind).inc(count)
        for item_kind, count in tally.duplicates.items():
            self._metrics.document_duplicates.labels(item_kind).inc(count)
        return [Rejected(batch[n], reason) for n, reason in sorted(rejected.items())]

    def _received(self, writer: StoreWriter, item: Decoded, tally: _Tally) -> str | None:
        """A CDA a facility sent: stored as received, its replacement marking the old one."""
        try:
            document = self._assembly.received(item.record)
        except Exception as exc:  # pure code failing on this record: it always will
            return _failure("reading the received document", exc)
        if not document.empi_id:
            return "the document is linked to no EMPI id"
        try:
            with writer.savepoint():
                outcome = writer.put(document)
        except DocumentDataError as exc:
            return _failure("storing the received document", exc)
        if outcome == "stored":
            tally.stored[document.kind] += 1
        elif outcome == "duplicate":
            tally.duplicates["document"] += 1
        elif outcome == "unrelated":
            return f"document {document.document_id} is not stored: {_UNRELATED}"
        else:
            return (f"document {document.document_id} is stored already with other content; "
                    "a correction must come as a new version that replaces it")
        return None

    def _all_groups(self, writer: StoreWriter, members: dict[str, list[int]],
                    batch: Sequence[Decoded], tally: _Tally) -> bool:
        """Every group of the batch under one savepoint, as :meth:`_group` tries each
        first; False, with nothing written, when any of them is refused: then each group
        goes again under its own. The parts are added first, then the changed groups'
        parts and documents read in one query each (four statements a group saved in the
        usual case)."""
        if not members:
            return True
        attempt = _Tally()
        try:
            with writer.savepoint():
                changed: list[str] = []
                for key, positions in members.items():
                    with _refusing(key):
                        if any([self._add(writer, key, batch[n], attempt) for n in positions]):
                            changed.append(key)
                with _refusing("of the batch"):
                    stored, states = writer.parts_of(changed), writer.groups_of(changed)
                for key in changed:
                    with _refusing(key):
                        self._update(writer, key, attempt, stored.get(key, []),
                                     states.get(key, []))
        except _Refused:
            return False
        tally.add(attempt)
        return True

    def _group(self, writer: StoreWriter, key: str, positions: list[int],
               batch: Sequence[Decoded], tally: _Tally) -> dict[int, str]:
        """Add a group's new parts and make its documents again; the rejected positions.

        First all of the batch's events of the group together; should that fail, each on
        its own over those that passed, so that only the event that fails is rejected.
        """
        attempt = _Tally()
        try:
            with writer.savepoint(), _refusing(key):
                changed = [self._add(writer, key, batch[n], attempt) for n in positions]
                if any(changed):
                    self._update(writer, key, attempt, writer.parts(key), writer.groups(key))
        except _Refused as refused:
            if len(positions) == 1:
                return {positions[0]: refused.reason}
        else:
            tally.add(attempt)
            return {}
        rejected: dict[int, str] = {}
        attempt = _Tally()
        try:
            with writer.savepoint(), _refusing(key):
                for n in positions:
                    one = _Tally()
                    try:
                        with writer.savepoint(), _refusing(key):
                            if self._add(writer, key, batch[n], one):
                                self._read(key, writer.parts(key))
                    except _Refused as refused:
                        rejected[n] = refused.reason
                    else:
                        attempt.add(one)
                self._update(writer, key, attempt, writer.parts(key), writer.groups(key))
        except _Refused as refused:
            return {n: rejected.get(n, refused.reason) for n in positions}
        tally.add(attempt)
        return rejected

    def _add(self, writer: StoreWriter, key: str, item: Decoded, tally: _Tally) -> bool:
        """Keep the event as a part of the group; True when the group changed."""
        try:
            changed = writer.add_part(key, str(item.record["event_id"]), item.schema_name,
                                      item.raw,
                                      supersedes=lambda stored: self._supersedes(item, stored))
        except DocumentDataError as exc:
            raise _Refused(_failure("storing the event as a part", exc)) from None
        if not changed:
            tally.duplicates["part"] += 1
        return changed

    def _supersedes(self, item: Decoded, stored: bytes) -> bool:
        """Whether this delivery of an event replaces the one stored (which assembly reads)."""
        try:
            _, record = wire.decode(stored, self._ids.by_id)
        except HutongError:  # the stored one no longer decodes: any readable one is better
            return True
        return self._assembly.supersedes(item.record, record)

    def _read(self, key: str, stored: list[tuple[str, bytes]]
              ) -> tuple[list[Part], Document | None, Collection[str]]:
        """The group's parts (as stored), the document they make (version 1) and the
        kinds withdrawn."""
        try:
            parts: list[Part] = []
            for _, raw in stored:
                entry, record = wire.decode(raw, self._ids.by_id)
                parts.append((entry.name, record))
            return (parts, self._assembly.assemble(key, parts),
                    self._assembly.withdrawn(key, parts))
        except Exception as exc:  # pure code (or a part that no longer decodes)
            raise _Refused(_failure(f"assembling document group {key}", exc)) from None

    def _update(self, writer: StoreWriter, key: str, tally: _Tally,
                stored: list[tuple[str, bytes]], documents: list[GroupState]) -> None:
        """Make the group's documents again from all its parts (``stored``), given its
        current documents; _Refused when it cannot. A database failure in the reads
        that give them raises: the runner retries the batch."""
        parts, made, gone = self._read(key, stored)
        states = {state.kind: state for state in documents}
        for kind in sorted(gone):
            state = states.get(kind)
            if state is not None and not state.withdrawn and (made is None or made.kind != kind):
                writer.withdraw(state.document_id)
        if made is None:
            return  # not a document (yet): the report's results are not final, say
        current = states.get(made.kind)
        try:
            if current is None:
                document: Document | None = made
            elif current.withdrawn:  # supported again: a new version
                document = self._assembly.assemble(
                    key, parts, version_number=current.version_number + 1,
                    replaces_document_id=current.document_id)
            else:
                # The header carries the version, so compare like with like: the parts made
                # with the current version's numbers give its bytes again if nothing changed.
                again = self._assembly.assemble(
                    key, parts, version_number=current.version_number,
                    replaces_document_id=current.replaces_document_id)
                if again is not None and again.content_sha256 == current.content_sha256:
                    tally.duplicates["document"] += 1
                    return
                document = self._assembly.assemble(
                    key, parts, version_number=current.version_number + 1,
                    replaces_document_id=current.document_id)
        except Exception as exc:  # pure code
            raise _Refused(_failure(f"assembling document group {key}", exc)) from None
        if document is None:
            return
        try:
            outcome = writer.put(document, group_key=key)
        except DocumentDataError as exc:
            raise _Refused(_failure(f"storing document group {key}", exc)) from None
        if outcome == "stored":
            tally.stored[document.kind] += 1
        elif outcome == "duplicate":
            tally.duplicates["document"] += 1
        else:
            raise _Refused(f"assembled document {document.document_id} clashes with a "
                           "stored one")

    def close(self) -> None:
        """The hub owns the store and closes it."""
