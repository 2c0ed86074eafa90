"""What each facility has sent: control ids seen, so a resend is known as one.

Event ids derive from the facility and the message control id (MSH-10), so a
resent message maps to the same events and the sinks keep one copy. What ids
alone cannot catch is a facility reusing a control id for *different* content
(a counter reset after an HIS upgrade): the sinks would silently keep one of the
two. The receipt log remembers, per facility and control id, a digest of what
was accepted; the intake then

* ACKs a true resend again (same digest) without writing anything, and
* refuses a different message under a used control id (AR, HL7 error 205
  "duplicate key identifier") and dead-letters it for a person to look at.

Only accepted messages (AA) are remembered, so a message refused for its
content may be corrected and resent under the same control id.

The log is a SQLite file in the data directory, one per hub (the MLLP and HTTP
connectors run in the hub process). Entries older than ``retention`` are
pruned; a resend after that is accepted again and collapsed by the sinks.

Receipts are written behind: held in memory (where :meth:`ReceiptLog.get` sees
them at once) and written to the file by a thread of the log's own, in one
transaction, every ``flush_s`` (a second by default) and at close. One write per
message, on the intake's loop, cost it about a tenth of its time. A hub that
dies loses at most the last second's receipts: a resend of one of those
messages is then accepted again, and the sinks collapse it on its event ids;
other content under one of those control ids is accepted too (AA, not AR 205),
and the sinks keep one of the two, as they would without the log. A flush that
fails (a full disk) keeps the receipts in memory and is tried again; one that
fails at close is logged with the number of receipts lost.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hutong.errors import HutongError

__all__ = ["Accepted", "ReceiptLog"]

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS receipts (
    facility_id TEXT NOT NULL,
    control_id  TEXT NOT NULL,
    digest      TEXT NOT NULL,
    event_ids   TEXT NOT NULL,
    accepted_at REAL NOT NULL,
    PRIMARY KEY (facility_id, control_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS receipts_accepted_at ON receipts (accepted_at);
"""


@dataclass(frozen=True, slots=True)
class Accepted:
    """An accepted message: its content digest and the events it became."""

    digest: str
    event_ids: tuple[str, ...]


#: A receipt as stored: facility, control id, digest, event ids (JSON), accepted at.
_Row = tuple[str, str, str, str, float]


class ReceiptLog:
    """Per (facility, control id): the accepted message's digest. ``":memory:"`` for tests."""

    def __init__(self, path: Path | str, *, retention_s: float = 30 * 86400,
                 flush_s: float = 1.0, clock: Callable[[], float] = time.time) -> None:
        self.retention_s = retention_s
        self._clock = clock
        self._db = _connect(path)
        # The writer has a connection of its own: under WAL, reading one never waits for
        # the other's transaction (an in-memory log has one, so they take turns).
        self._write_db = self._db if str(path) in ("", ":memory:") else _connect(path)
        self._read_lock = threading.Lock()  # the reading connection
        self._write_lock = threading.Lock()  # one flush at a time
        self._lock = threading.Lock()  # the receipts held in memory
        #: Accepted since the last flush, by (facility, control id): the row to write.
        self._held: dict[tuple[str, str], _Row] = {}
        #: The rows of the flush under way: read from here until it has committed.
        self._writing: dict[tuple[str, str], _Row] = {}
        self._last_prune = -math.inf
        self._closed = threading.Event()
        self._shut = False  # the file is closed
        self._writer = threading.Thread(target=_write_behind,
                                        args=(weakref.ref(self), self._closed, flush_s),
                                        name="receipt-log", daemon=True)
        self._writer.start()

    def get(self, facility_id: str, control_id: str) -> Accepted | None:
        key = (facility_id, control_id)
        with self._lock:
            held = self._held.get(key) or self._writing.get(key)
        if held is not None:
            row = held[2:4]
        else:
            with self._read_lock:
                row = self._db.execute("SELECT digest, event_ids FROM receipts "
                                       "WHERE facility_id = ? AND control_id = ?",
                                       key).fetchone()
        if row is None:
            return None
        return Accepted(row[0], tuple(json.loads(row[1])))

    def put(self, facility_id: str, control_id: str, accepted: Accepted) -> None:
        """Remember an accepted message (after Kafka confirmed its records); written to
        the file within ``flush_s``."""
        if self._closed.is_set():
            raise HutongError("receipt log: closed, the receipt cannot be kept")
        row = (facility_id, control_id, accepted.digest, json.dumps(accepted.event_ids),
               self._clock())
        with self._lock:
            self._held[(facility_id, control_id)] = row

    def flush(self) -> None:
        """Write the receipts held in memory, in one transaction; prune old ones hourly.
        On a database error they are kept in memory (unless accepted again since) and the
        error raised."""
        with self._write_lock:
            if self._shut:
                return
            with self._lock:
                self._writing, self._held = self._held, {}
            now = self._clock()
            prune = now - self._last_prune > 3600
            try:
                if self._writing or prune:
                    shared = self._write_db is self._db
                    with self._read_lock if shared else contextlib.nullcontext():
                        self._write(list(self._writing.values()), now if prune else None)
                    if prune:
                        self._last_prune = now
            except BaseException:
                with self._lock:  # kept to write again, unless accepted again since
                    self._held = self._writing | self._held
                raise
            finally:
                with self._lock:
                    self._writing = {}

    def _write(self, rows: list[_Row], prune_at: float | None) -> None:
        db = self._write_db
        try:
            db.execute("BEGIN")
            if prune_at is not None:
                db.execute("DELETE FROM receipts WHERE accepted_at < ?",
                           (prune_at - self.retention_s,))
            db.executemany("INSERT OR REPLACE INTO receipts VALUES (?, ?, ?, ?, ?)", rows)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Write what is held and close the file (a receipt that cannot be written is
        lost, and counted in the log)."""
        self._closed.set()
        self._writer.join(5)
        try:
            self.flush()
        except sqlite3.Error as exc:
            log.error("receipt log: %d receipts not written at close (%s); resends of "
                      "those messages will be stored again", len(self._held), exc)
        finally:
            with self._write_lock, self._read_lock:
                if not self._shut:
                    self._shut = True
                    self._db.close()
                    if self._write_db is not self._db:
                        self._write_db.close()


def _write_behind(log_ref: weakref.ref[ReceiptLog], closed: threading.Event,
                  every_s: float) -> None:
    """The writer thread: flush every ``every_s`` until the log is closed or dropped (it
    holds the log only while flushing, so a log nobody closes is still collected)."""
    while not closed.wait(every_s):
        receipts = log_ref()
        if receipts is None:
            return
        try:
            receipts.flush()
        except sqlite3.Error as exc:  # a full disk: kept in memory, tried again
            log.error("receipt log not written (%s); trying again in %.1f s", exc, every_s)
        except Exception:  # a bug: the thread must go on writing
            log.exception("receipt log not written; trying again in %.1f s", every_s)
        del receipts


def _connect(path: Path | str) -> sqlite3.Connection:
    try:
        db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
    except sqlite3.Error as exc:
        raise HutongError(f"receipt log {path}: cannot open ({exc})") from exc
    return db
