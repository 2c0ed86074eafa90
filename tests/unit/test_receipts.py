"""The receipt log remembers accepted control ids per facility."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from hutong.errors import HutongError
from producers.hl7v2.message import Message
from producers.receipts import Accepted, ReceiptLog

MSG = "MSH|^~\\&|HIS|H1|HUTONG|R|{ts}||ADT^A01|C1|P|2.4\rPID|1||{mrn}\r"


def test_accepted_messages_are_remembered_across_reopen(tmp_path: Path) -> None:
    log = ReceiptLog(tmp_path / "r.sqlite")
    assert log.get("H1", "C1") is None
    log.put("H1", "C1", Accepted("d1", ("e1", "e2")))
    log.close()
    log = ReceiptLog(tmp_path / "r.sqlite")
    assert log.get("H1", "C1") == Accepted("d1", ("e1", "e2"))
    assert log.get("H2", "C1") is None
    log.close()


def test_old_receipts_are_pruned_at_most_hourly(tmp_path: Path) -> None:
    now = [0.0]
    log = ReceiptLog(tmp_path / "r.sqlite", retention_s=3600, clock=lambda: now[0])
    log.put("H1", "C1", Accepted("d1", ()))
    log.flush()  # the first flush prunes (nothing yet) and writes C1, accepted at 0
    now[0] = 1800.0
    log.put("H1", "C2", Accepted("d2", ()))
    log.flush()  # within the hour: nothing pruned
    assert log.get("H1", "C1") is not None
    now[0] = 5000.0
    log.flush()  # C1 is older than the retention now; C2 is not
    assert log.get("H1", "C1") is None and log.get("H1", "C2") is not None
    log.close()


def test_a_receipt_counts_at_once_and_reaches_the_file_within_the_flush_interval(
        tmp_path: Path) -> None:
    log = ReceiptLog(tmp_path / "r.sqlite", flush_s=0.05)
    log.put("H1", "C1", Accepted("d1", ("e1",)))
    assert log.get("H1", "C1") == Accepted("d1", ("e1",))  # held in memory, not yet written
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _on_file(tmp_path / "r.sqlite") == 0:
        time.sleep(0.02)
    assert _on_file(tmp_path / "r.sqlite") == 1  # the log's own thread wrote it
    assert log.get("H1", "C1") == Accepted("d1", ("e1",))
    log.close()


def test_a_put_after_a_flush_replaces_the_written_receipt(tmp_path: Path) -> None:
    log = ReceiptLog(tmp_path / "r.sqlite", flush_s=3600)
    log.put("H1", "C1", Accepted("d1", ()))
    log.flush()
    log.put("H1", "C1", Accepted("d2", ()))
    assert log.get("H1", "C1") == Accepted("d2", ())
    log.close()
    reopened = ReceiptLog(tmp_path / "r.sqlite")
    assert reopened.get("H1", "C1") == Accepted("d2", ())
    reopened.close()


def _on_file(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT count(*) FROM receipts").fetchone()[0])


def test_digest_ignores_when_the_message_was_built_but_nothing_else() -> None:
    first = Message.parse(MSG.format(ts="20261122080000", mrn="M1")).content_digest()
    rebuilt = Message.parse(MSG.format(ts="20261122090000", mrn="M1")).content_digest()
    other = Message.parse(MSG.format(ts="20261122080000", mrn="M2")).content_digest()
    assert first == rebuilt != other


class _FullDisk:
    """A write connection whose every write fails, as on a full disk."""

    in_transaction = False

    def execute(self, sql: str, *_: object) -> None:
        if sql != "ROLLBACK":
            raise sqlite3.OperationalError("database or disk is full")

    def executemany(self, *_: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    def close(self) -> None:
        pass


def test_receipts_a_write_failed_on_are_kept_and_written_by_the_next_flush(
        tmp_path: Path) -> None:
    log = ReceiptLog(tmp_path / "r.sqlite", flush_s=3600)
    working = log._write_db
    log._write_db = _FullDisk()  # type: ignore[assignment]
    log.put("H1", "C1", Accepted("d1", ()))
    with pytest.raises(sqlite3.OperationalError):
        log.flush()
    assert log.get("H1", "C1") == Accepted("d1", ())  # still known
    log._write_db = working
    log.flush()
    assert _on_file(tmp_path / "r.sqlite") == 1
    log.close()


def test_a_close_whose_write_fails_still_closes_and_takes_no_more_receipts(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    log = ReceiptLog(tmp_path / "r.sqlite", flush_s=3600)
    working = log._write_db
    log._write_db = _FullDisk()  # type: ignore[assignment]
    log.put("H1", "C1", Accepted("d1", ()))
    log.close()
    working.close()
    assert "1 receipts not written at close" in caplog.text
    with pytest.raises(HutongError, match="closed"):
        log.put("H1", "C2", Accepted("d2", ()))
