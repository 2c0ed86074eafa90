"""The receipt log remembers accepted control ids per facility."""

from __future__ import annotations

from pathlib import Path

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


def test_old_receipts_are_pruned(tmp_path: Path) -> None:
    log = ReceiptLog(tmp_path / "r.sqlite", retention_s=-1)  # everything is already old
    log.put("H1", "C1", Accepted("d1", ()))
    log.put("H1", "C2", Accepted("d2", ()))  # pruning runs at most hourly: first put pruned
    assert log.get("H1", "C1") is None and log.get("H1", "C2") is not None


def test_digest_ignores_when_the_message_was_built_but_nothing_else() -> None:
    first = Message.parse(MSG.format(ts="20261122080000", mrn="M1")).content_digest()
    rebuilt = Message.parse(MSG.format(ts="20261122090000", mrn="M1")).content_digest()
    other = Message.parse(MSG.format(ts="20261122080000", mrn="M2")).content_digest()
    assert first == rebuilt != other
