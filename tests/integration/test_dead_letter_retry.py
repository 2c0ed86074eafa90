"""Retrying a dead letter on real parts: Tansu, chDB, the intake, the audit log.

A point-of-care analyser's interface sends ORU^R30 (unsolicited point-of-care
observation), which this hub does not read: AR, a dead letter. The warehouse is
pseudonymised, so it keeps no bytes of the letter, only where it sits on
hutong.dlq. A later hub reads R30 (here: the R01 mapper registered for it, as the
upgrade would); the operator retries the letter, its message becomes events, and
the audit log names who did it. Retrying again is recognised as a resend.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from hutong.audit import AuditLog
from hutong.errors import LetterGone
from hutong.monitor.retry import DlqReader
from producers.hl7v2.adapter import MAPPERS

from .conftest import RunningHub, send, wait_for

pytestmark = pytest.mark.integration

FACILITY = "POCTHOSP"


def r30(cid: str) -> bytes:
    return (f"MSH|^~\\&|POCT|{FACILITY}|HUTONG|REGION|20261204093000||ORU^R30^ORU_R30|{cid}|P|"
            "2.5||||||UNICODE UTF-8\r"
            f"PID|1||R30-{cid}^^^{FACILITY}^MR||床旁甲||19700101|F\r"
            f"ORC|NW|{cid}P|{cid}F\r"
            f"OBR|1|{cid}P|{cid}F|GLU^血糖^L|||20261204092000\r"
            "OBX|1|NM|GLU^血糖^L||5.6|mmol/L|3.9-6.1|N|||F|||20261204092500\r").encode()


@pytest.fixture(scope="module")
def api(hub: RunningHub) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hub.settings.api_url, timeout=30) as client:
        yield client


def letter_of(hub: RunningHub, cid: str) -> dict[str, Any]:
    """The letter's warehouse row, once the sink wrote it."""
    rows = wait_for(lambda: hub.query(
        "SELECT dead_letter_id, dlq_partition, dlq_offset, payload_size, length(payload), reason "
        "FROM dead_letters WHERE facility_id = {f:String} AND position(reason, {c:String}) > 0",
        {"f": FACILITY, "c": "R30"}), timeout=60)
    names = ("dead_letter_id", "dlq_partition", "dlq_offset", "payload_size", "kept", "reason")
    return dict(zip(names, rows[0], strict=True))


def test_a_letter_is_retried_once_the_hub_reads_its_message(
        hub: RunningHub, api: httpx.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    message = r30("POC0001")
    [(code, _, text)] = send(hub, message)
    assert code == "AR" and "ORU^R30 is not supported" in text
    letter = letter_of(hub, "POC0001")
    assert letter["dlq_partition"] is not None and letter["dlq_offset"] is not None
    assert (letter["payload_size"], letter["kept"]) == (len(message), 0)  # no bytes kept

    listed = api.get("/api/v1/monitor/dead-letters", params={"facility": FACILITY}).json()
    [shown] = [d for d in listed["items"] if d["dead_letter_id"] == letter["dead_letter_id"]]
    assert shown["retryable"] and shown["last_retry"] is None and "payload" not in shown

    url = f"/api/v1/monitor/dead-letters/{letter['dead_letter_id']}/retry"
    before = api.post(url)
    assert before.status_code == 200, before.text
    assert before.json()["outcome"] == "AR" and "not supported" in before.json()["reason"]

    monkeypatch.setitem(MAPPERS, ("ORU", "R30"), MAPPERS[("ORU", "R01")])  # the upgrade
    after = api.post(url)
    assert after.status_code == 200, after.text
    done = after.json()
    assert (done["outcome"], done["stored"], done["duplicate"]) == ("AA", True, False)
    assert len(done["event_ids"]) == 1 and done["retried_by"] == "local"
    assert wait_for(lambda: hub.query(
        "SELECT test_code, value FROM lab_results WHERE facility_id = {f:String} "
        "AND message_control_id = 'POC0001'", {"f": FACILITY}), timeout=60) == [("GLU", "5.6")]

    again = api.post(url).json()  # the message is in: a resend, nothing stored twice
    assert (again["outcome"], again["duplicate"], again["event_ids"]) == (
        "AA", True, done["event_ids"])

    listed = api.get("/api/v1/monitor/dead-letters", params={"facility": FACILITY}).json()
    [shown] = [d for d in listed["items"] if d["dead_letter_id"] == letter["dead_letter_id"]]
    assert shown["last_retry"]["outcome"] == "AA"

    audited = [r for r in AuditLog(hub.settings.data_dir / "audit").records()
               if r["action"] == "dead_letter.retry"]
    assert [(r["principal"], r["dead_letter_id"], r["facility"], r["outcome"])
            for r in audited] == [("local", letter["dead_letter_id"], FACILITY, outcome)
                                  for outcome in ("AR", "AA", "AA")]
    assert all(r["address"] == "127.0.0.1" for r in audited)
    trail = "".join(p.read_text("utf-8")
                    for p in (hub.settings.data_dir / "audit").glob("*.jsonl"))
    assert "床旁甲" not in trail and "R30-POC0001" not in trail  # no patient in the audit


def test_unknown_and_unretryable_letters_are_refused(hub: RunningHub, api: httpx.Client) -> None:
    assert api.post("/api/v1/monitor/dead-letters/no-such-letter/retry").status_code == 404
    hub.hub.warehouse.insert(  # type: ignore[union-attr]
        "dead_letters",
        [("dl-stream-1", "stream", "no such alert", None, "hutong.alerts.ack[0]@3", None,
          "hutong.alerts.ack", 0, 3, hub.query("SELECT now64(3)")[0][0], 10, b"", None, None)],
        ("dead_letter_id", "stage", "reason", "error_code", "location", "facility_id",
         "source_topic", "source_partition", "source_offset", "failed_at", "payload_size",
         "payload", "dlq_partition", "dlq_offset"))
    refused = api.post("/api/v1/monitor/dead-letters/dl-stream-1/retry")
    assert refused.status_code == 409 and "stream stage" in refused.json()["detail"]


def test_the_reader_finds_a_letter_by_its_place_and_knows_when_it_is_gone(
        hub: RunningHub, kafka_bootstrap: str) -> None:
    send(hub, r30("POC0002").replace(b"ORU^R30", b"ORU^R32"))  # another type no hub reads
    letter = wait_for(lambda: hub.query(
        "SELECT dead_letter_id, dlq_partition, dlq_offset FROM dead_letters "
        "WHERE facility_id = {f:String} AND position(reason, 'R32') > 0", {"f": FACILITY}))[0]
    reader = DlqReader({"bootstrap.servers": kafka_bootstrap}, hub.hub.ids)
    found = reader.fetch(letter[1], letter[2])
    assert found["dead_letter_id"] == letter[0] and b"ORU^R32" in found["payload"]
    with pytest.raises(LetterGone):
        reader.fetch(letter[1], 10**12)
