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
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from hutong.errors import HutongError

__all__ = ["Accepted", "ReceiptLog"]

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


class ReceiptLog:
    """Per (facility, control id): the accepted message's digest. ``":memory:"`` for tests."""

    def __init__(self, path: Path | str, *, retention_s: float = 30 * 86400) -> None:
        self.retention_s = retention_s
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise HutongError(f"receipt log {path}: cannot open ({exc})") from exc
        self._last_prune = 0.0

    def get(self, facility_id: str, control_id: str) -> Accepted | None:
        with self._lock:
            row = self._db.execute(
                "SELECT digest, event_ids FROM receipts WHERE facility_id = ? AND control_id = ?",
                (facility_id, control_id)).fetchone()
        if row is None:
            return None
        return Accepted(row[0], tuple(json.loads(row[1])))

    def put(self, facility_id: str, control_id: str, accepted: Accepted) -> None:
        """Remember an accepted message (after Kafka confirmed its records)."""
        now = time.time()
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO receipts VALUES (?, ?, ?, ?, ?)",
                (facility_id, control_id, accepted.digest, json.dumps(accepted.event_ids), now))
            if now - self._last_prune > 3600:
                self._db.execute("DELETE FROM receipts WHERE accepted_at < ?",
                                 (now - self.retention_s,))
                self._last_prune = now

    def close(self) -> None:
        with self._lock:
            self._db.close()
