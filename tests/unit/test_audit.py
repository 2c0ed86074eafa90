"""The audit log is append-only and tamper-evident."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hutong.audit import GENESIS, AuditLog, verify
from hutong.errors import HutongError


def test_records_chain_across_restarts_and_months(tmp_path: Path) -> None:
    times = iter([datetime(2026, 10, 31, 23, 59, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC),
                  datetime(2026, 11, 2, tzinfo=UTC)])
    first = AuditLog(tmp_path, clock=lambda: next(times)).record("intake.refused", reason="x")
    assert first["prev"] == GENESIS
    log = AuditLog(tmp_path, clock=lambda: next(times))  # a restart picks the chain up
    second = log.record("intake.refused", facility="清水县")
    third = log.record("connection.refused")
    assert second["prev"] == first["hash"] and third["prev"] == second["hash"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit-2026-10.jsonl",
                                                          "audit-2026-11.jsonl"]
    assert verify(tmp_path) == 3


@pytest.mark.parametrize("tamper", ["edit", "delete", "swap"])
def test_tampering_breaks_the_chain(tmp_path: Path, tamper: str) -> None:
    log = AuditLog(tmp_path)
    for n in range(3):
        log.record("intake.refused", n=n)
    path = next(tmp_path.iterdir())
    lines = path.read_text().splitlines()
    if tamper == "edit":
        entry = json.loads(lines[1])
        entry["n"] = 9
        lines[1] = json.dumps(entry, sort_keys=True)
    elif tamper == "delete":
        del lines[1]
    else:
        lines[0], lines[1] = lines[1], lines[0]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(HutongError, match="breaks the chain"):
        verify(tmp_path)


def test_claims_are_cut_short_and_a_torn_last_line_does_not_stop_the_log(
        tmp_path: Path) -> None:
    log = AuditLog(tmp_path)
    entry = log.record("intake.refused", facility="X" * 10_000)
    assert len(entry["facility"]) == 120
    path = next(tmp_path.iterdir())
    with path.open("a") as out:
        out.write('{"at": "2026-')  # a crash mid-write
    assert AuditLog(tmp_path).record("connection.refused")["prev"] == entry["hash"]
    with pytest.raises(HutongError, match="not JSON"):
        verify(tmp_path)


def test_two_writers_on_one_directory_keep_one_chain(tmp_path: Path) -> None:
    """The hub and `hutong users add` append to the same log: neither forks the chain."""
    hub, cli = AuditLog(tmp_path), AuditLog(tmp_path)
    for n in range(3):
        hub.record("empi.merge", n=n)
        cli.record("user.added", n=n)
    hub.record("alert.acknowledge")
    assert verify(tmp_path) == 7
    assert hub.head == cli.head == list(AuditLog(tmp_path).records())[-1]["hash"]


def test_the_head_shows_records_cut_off_the_end(tmp_path: Path) -> None:
    log = AuditLog(tmp_path)
    for n in range(3):
        log.record("empi.merge", n=n)
    noted = log.head
    path = next(tmp_path.glob("audit-*.jsonl"))
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:2]))
    assert verify(tmp_path) == 2  # still a chain, but it no longer ends where it did
    assert AuditLog(tmp_path).head != noted
