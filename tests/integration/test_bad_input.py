"""Bad input on a real hub: hostile XML over HTTP ingest, hostile MLLP on the listener.

One hub for the module (Tansu, chDB, a registered facility with an API key that
may also send plain MLLP from 127.0.0.0/8, a 2 s frame timeout). Around it:

- a canary file whose content must never appear anywhere: in an answer, on a
  Kafka topic, in the warehouse;
- a trap HTTP server on a local port, named by external entities and DTDs: it
  must never receive a request.

Each hostile XML document is refused with a 4xx whose body names the cause and
leaves a dead letter (or, for a body over the ingest limit, an audit record), the
test process's memory (the hub runs in it) grows by less than a generous 600 MB
while the hub reads it, and the request completes within the client's timeout.

Each hostile MLLP input gets an AR (or is closed, with a dead letter) while a
well-behaved client on another connection is served throughout.
"""

from __future__ import annotations

import asyncio
import http.server
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition

from connectors.facilities import hash_api_key
from connectors.mllp.client import MLLPClient
from connectors.mllp.framing import CR, FS, VT, frame
from hutong.config import Settings
from hutong.sender import ack_summary
from tests.fuzzing import watch_rss

from .conftest import RunningHub, wait_for

pytestmark = pytest.mark.integration

KEY = "htk_bad-input-key-of-badhosp"
FIXTURE = (Path(__file__).parents[1] / "fixtures" / "cda" / "C0002-outpatient.xml").read_bytes()
CANARY_TEXT = "CANARY-bad-input-5c1d0e-must-never-be-read"
MB = 1024 * 1024
#: Memory the test process may grow by while the hub reads one hostile input: generous,
#: a bound against entity expansion and unbounded buffering, not a measurement.
RSS_BOUND = 600 * MB


class Trap(http.server.BaseHTTPRequestHandler):
    """Answers anything with a DTD-ish body, and remembers that it was asked."""

    requests: list[str] = []  # noqa: RUF012 - shared on purpose: the server makes instances

    def do_GET(self) -> None:
        Trap.requests.append(self.path)
        body = f'<!ENTITY leak "{CANARY_TEXT}">'.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


@dataclass
class Stage:
    hub: RunningHub
    canary: Path
    trap: str  # http://127.0.0.1:port
    bootstrap: str


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory, hub_settings: Callable[..., Settings],
          kafka_bootstrap: str) -> Iterator[Stage]:
    root = tmp_path_factory.mktemp("bad-input")
    canary = root / "canary.txt"
    canary.write_text(CANARY_TEXT, encoding="ascii")
    (root / "facilities.yaml").write_text(f"""
facilities:
  - id: BADHOSP
    mllp_sources: [127.0.0.0/8]
    api_keys: [{hash_api_key(KEY)}]
""", encoding="utf-8")
    trap = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Trap)
    threading.Thread(target=trap.serve_forever, daemon=True).start()
    settings = hub_settings(root / "data", intake_open=False,
                            facilities_file=root / "facilities.yaml", mllp_frame_timeout_s=2.0)
    running = RunningHub(settings).start()
    try:
        yield Stage(running, canary, f"http://127.0.0.1:{trap.server_address[1]}",
                    kafka_bootstrap)
    finally:
        running.stop()
        trap.shutdown()
        trap.server_close()


def post(stage: Stage, kind: str, body: bytes, timeout: float = 120) -> httpx.Response:
    return httpx.post(f"{stage.hub.settings.api_url}/api/v1/ingest/{kind}", content=body,
                      headers={"Authorization": f"Bearer {KEY}"}, timeout=timeout)


# --- hostile XML --------------------------------------------------------------------------

CDA_OPEN = '<ClinicalDocument xmlns="urn:hl7-org:v3">'
LOL = '<!ENTITY lol "lol">' + "".join(
    f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
    for i in range(1, 10))


def cda_with(doctype: str = "", title: str = "门诊病历", prolog: str = '<?xml version="1.0"?>',
             extra: str = "") -> str:
    """The valid fixture with a DOCTYPE, a title and an element of the test's choosing."""
    text = FIXTURE.decode("utf-8").split("\n", 1)[1]  # its own XML declaration dropped
    text = text.replace("<title>门(急)诊病历</title>", f"<title>{title}</title>{extra}", 1)
    return prolog + doctype + text


@dataclass(frozen=True)
class Hostile:
    name: str
    body: bytes
    status: int
    cause: str  # words the answer's reason must hold


def hostile_documents(canary: Path, trap: str) -> list[Hostile]:
    file_uri = canary.as_uri()
    return [
        Hostile("xxe-file", cda_with(f'<!DOCTYPE ClinicalDocument [<!ENTITY x SYSTEM '
                                     f'"{file_uri}">]>', "&x;").encode(), 400, "DOCTYPE"),
        Hostile("xxe-http", cda_with(f'<!DOCTYPE ClinicalDocument [<!ENTITY x SYSTEM '
                                     f'"{trap}/entity">]>', "&x;").encode(), 400, "DOCTYPE"),
        Hostile("parameter-entity", cda_with(
            f'<!DOCTYPE ClinicalDocument [<!ENTITY % p SYSTEM "{trap}/param"> %p;'
            f'<!ENTITY % f SYSTEM "{file_uri}">]>', "&leak;").encode(), 400, "DOCTYPE"),
        Hostile("billion-laughs", cda_with(f"<!DOCTYPE ClinicalDocument [{LOL}]>",
                                           "&lol9;").encode(), 400, "DOCTYPE"),
        Hostile("quadratic-blowup", cda_with(
            f'<!DOCTYPE ClinicalDocument [<!ENTITY a "{"a" * 50_000}">]>',
            "&a;" * 50_000).encode(), 400, "DOCTYPE"),
        Hostile("external-dtd", cda_with(
            f'<!DOCTYPE ClinicalDocument SYSTEM "{trap}/cda.dtd">').encode(), 400, "DOCTYPE"),
        Hostile("external-dtd-file", cda_with(
            f'<!DOCTYPE ClinicalDocument PUBLIC "-//X//CDA//EN" "{file_uri}">').encode(), 400,
            "DOCTYPE"),
        Hostile("xinclude", cda_with(extra=(
            f'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="{file_uri}" '
            'parse="text"/>')).encode(), 400, "XInclude"),
        Hostile("xinclude-http", cda_with(extra=(
            f'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="{trap}/inc" '
            'parse="xml"/>')).encode(), 400, "XInclude"),
        Hostile("deep-100000", (CDA_OPEN + "<a>" * 100_000 + "</a>" * 100_000
                                + "</ClinicalDocument>").encode(), 400, "parser limit"),
        Hostile("huge-attribute", cda_with(extra=f'<code code="{"x" * (9 * MB)}"/>').encode(),
                413, "limit"),  # once a 503 "resend" for ever: its dead letter never fit
        Hostile("huge-title-within-the-limit", cda_with(title="x" * (4 * MB), extra=(
            f"<!--{'y' * (3 * MB + 512 * 1024)}-->")).encode(), 422, "too large to store"),
        Hostile("huge-text-over-the-ingest-limit", cda_with(
            title="x" * (17 * MB)).encode(), 413, "limit"),
        Hostile("utf-16-doctype", cda_with(
            f'<!DOCTYPE ClinicalDocument [<!ENTITY x SYSTEM "{file_uri}">]>', "&x;",
            prolog='<?xml version="1.0" encoding="UTF-16"?>').encode("utf-16"), 400, "DOCTYPE"),
        Hostile("gb18030-mislabelled-utf-8", cda_with(
            prolog='<?xml version="1.0" encoding="UTF-8"?>').encode("gb18030"), 400,
            "not well-formed"),
        Hostile("bom-then-doctype", b"\xef\xbb\xbf" + cda_with(
            f'<!DOCTYPE ClinicalDocument SYSTEM "{trap}/bom.dtd">').encode(), 400, "DOCTYPE"),
        Hostile("processing-instruction-stylesheet", cda_with(
            prolog=f'<?xml version="1.0"?><?xml-stylesheet href="{trap}/x.xsl"?>'
                   '<?php system("id"); ?>',
            extra="<?evil x?>").encode(), 202, ""),
        Hostile("not-a-cda", b"<html><body>hello</body></html>", 422, "ClinicalDocument"),
    ]


HOSTILE_NAMES = [h.name for h in hostile_documents(Path("/x"), "http://x")]


@pytest.mark.timeout(300)  # a guard against a hang, not a speed assertion
@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_xml_over_http_is_refused_and_recorded(stage: Stage, name: str) -> None:
    case = next(h for h in hostile_documents(stage.canary, stage.trap) if h.name == name)
    body = case.body
    if case.status == 202:  # a resend of the fixture's document id would be a 409: a new id
        body = body.replace(b"CYYY-MZBL-20240115-000123", f"BAD-{name}".encode())
    audit_before = len(list(stage.hub.hub.audit.records())) if stage.hub.hub.audit else 0
    with watch_rss() as rss:
        answer = post(stage, "cda", body)
    assert rss.growth < RSS_BOUND, f"{name}: grew {rss.growth / MB:.0f} MB"
    assert answer.status_code == case.status, answer.text[:500]
    assert CANARY_TEXT not in answer.text
    assert Trap.requests == [], f"{name}: the trap server was asked for {Trap.requests}"
    if case.status == 202:  # PIs are dropped from the tree; the bytes are stored as sent
        return
    if case.status == 413:  # over the body limit: nothing kept but the audit record
        assert stage.hub.hub.audit is not None
        records = wait_for(lambda: list(stage.hub.hub.audit.records())[audit_before:])
        assert any(r.get("status") == 413 and r.get("facility") == "BADHOSP" for r in records)
        assert case.cause in answer.text
        return
    reason = answer.json()["reason"]
    assert case.cause in reason, reason
    assert answer.json()["location"].startswith(("CDA document", "ClinicalDocument",
                                                 "hutong.events.document"))
    letters = wait_for(lambda: stage.hub.query(
        "SELECT reason, location FROM hutong.dead_letters WHERE facility_id = 'BADHOSP' "
        "AND payload_size = {n:UInt64}", {"n": len(body)}))
    assert letters[0][0] == reason


def test_nothing_of_the_canary_reached_kafka_or_the_warehouse(stage: Stage) -> None:
    """After the table: every topic the documents could reach, and the warehouse."""
    post(stage, "cda", hostile_documents(stage.canary, stage.trap)[0].body)  # at least one
    for topic in ("hutong.dlq", "hutong.raw.cda", "hutong.events.document"):
        for value, headers in topic_records(stage.bootstrap, topic):
            assert CANARY_TEXT.encode() not in value, topic
            assert all(CANARY_TEXT.encode() not in (v or b"") for _, v in headers), topic
    for table, columns in (("dead_letters", "reason, payload, ifNull(location, '')"),
                           ("documents", "*")):
        rows = stage.hub.query(f"SELECT {columns} FROM hutong.{table}")  # noqa: S608
        assert CANARY_TEXT not in repr(rows), table
    assert Trap.requests == []


def topic_records(bootstrap: str, topic: str) -> list[tuple[bytes, list[tuple[str, bytes]]]]:
    """Every record on ``topic`` up to its end now."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bad-input-{time.time()}",
                         "enable.auto.commit": False, "session.timeout.ms": 6000})
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in metadata.partitions}
        consumer.assign([TopicPartition(topic, p, 0) for p, end in ends.items() if end > 0])
        left, out = {p: end for p, end in ends.items() if end > 0}, []
        deadline = time.monotonic() + 60
        while left and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            out.append((msg.value() or b"", list(msg.headers() or [])))
            if msg.offset() + 1 >= left.get(msg.partition(), 0):
                left.pop(msg.partition(), None)
        assert not left, f"{topic}: could not read to the end"
        return out
    finally:
        consumer.close()


# --- hostile MLLP -------------------------------------------------------------------------

ORU = ("MSH|^~\\&|LIS|BADHOSP|HUTONG|REGION|20261120093000||ORU^R01^ORU_R01|{cid}|P|2.4||||||"
       "{cs}\rPID|1||MRN{cid}^^^BADHOSP^MR||测试甲||19491231|M\r"
       "OBR|1|{cid}P|{cid}F|BCP^生化^L|||20261120090000\r"
       "OBX|1|NM|K^钾^L||4.2|mmol/L|3.5-5.5|N|||F\r")


def oru(cid: str, cs: str = "UNICODE UTF-8") -> bytes:
    return ORU.format(cid=cid, cs=cs).encode()


class GoodClient:
    """Sends valid messages on its own connection while a hostile input is being handled."""

    def __init__(self, port: int, prefix: str) -> None:
        self.port, self.prefix = port, prefix
        self.codes: list[str] = []
        self._stop = asyncio.Event()

    async def run(self) -> None:
        async with MLLPClient("127.0.0.1", self.port, timeout=30) as client:
            n = 0
            while not self._stop.is_set() or not self.codes:
                n += 1
                self.codes.append(ack_summary(await client.send(oru(f"{self.prefix}{n}")))[0])
                await asyncio.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()


async def raw_exchange(port: int, data: bytes, *, trickle: float = 0.0, expect: int = 1,
                       read_for: float = 30) -> bytes:
    """Write ``data`` (one byte per ``trickle`` seconds if set) while reading; stop when
    ``expect`` ACKs came, the hub closed, or ``read_for`` seconds passed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def write() -> None:
        try:
            step = 1 if trickle else len(data)
            for i in range(0, len(data), step):
                writer.write(data[i : i + step])
                await writer.drain()
                if trickle:
                    await asyncio.sleep(trickle)
        except ConnectionError:  # the hub answered and closed while we still wrote
            pass

    async def read() -> bytes:
        chunks: list[bytes] = []
        while (b"".join(chunks)).count(FS + CR) < expect:
            chunk = await reader.read(65536)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)

    sending = asyncio.create_task(write())
    try:
        return await asyncio.wait_for(read(), read_for)
    except (TimeoutError, ConnectionError):
        return b""
    finally:
        sending.cancel()
        writer.close()


def codes_in(answer: bytes) -> list[str]:
    return [ack_summary(part.strip(VT + FS + CR))[0] for part in answer.split(FS + CR)
            if part.strip(VT + FS + CR)]


@dataclass(frozen=True)
class HostileStream:
    name: str
    data: bytes
    codes: list[str]  # the ACK codes the sender gets, in order
    words: str = ""  # in the AR's text
    trickle: float = 0.0
    read_for: float = 30
    letter: str = ""  # a dead letter this input must leave (SQL condition on dead_letters)


def hostile_streams() -> list[HostileStream]:
    good = oru("MLLPOK1")
    return [
        HostileStream("no-end-block-then-a-new-frame", VT + oru("NOEND1") + frame(good),
                      ["AA"]),
        HostileStream("end-block-without-start", oru("NOSTART1") + FS + CR + frame(
            oru("MLLPOK2")), ["AA"]),
        HostileStream("no-end-block-then-silence", VT + oru("SILENT1"), ["AR"],
                      "not completed",
                      letter=f"location = 'MLLP' AND payload_size = {len(oru('SILENT1'))}"),
        HostileStream("5-mb-frame", frame(oru("BIG5MB") + b"X" * (5 * MB)), ["AR"], "limit",
                      letter="location = 'MLLP' AND position(reason, 'limit') > 0"),
        HostileStream("nul-bytes", frame(b"\x00" * 64 + oru("NUL1")), ["AR"], "MSH",
                      letter=f"location = 'MSH' AND payload_size = {64 + len(oru('NUL1'))}"),
        HostileStream("nul-in-a-field", frame(oru("NUL2").replace(b"4.2", b"4\x002")),
                      ["AE"], "OBX[1]-5", letter="location = 'OBX[1]-5'"),
        HostileStream("flood-of-empty-frames", frame(b"") * 1000, ["AR"] * 1000, "MSH",
                      read_for=240, letter="location = 'MSH' AND payload_size = 0"),
        HostileStream("slowloris", VT + oru("SLOW1")[:40], ["AR"], "not completed",
                      trickle=0.1, letter="location = 'MLLP' AND payload_size < 40 "
                                         "AND position(reason, 'not completed') > 0"),
        HostileStream("invalid-utf-8", frame(oru("BADU8").replace(b"\xe6\xb5\x8b",
                                                                  b"\xe6\xff\xfe")),
                      ["AR"], "not valid utf-8", letter="location = 'MSH-18'"),
        HostileStream("invalid-gb18030", frame(oru("BADGB", "GB18030").replace(
            "测试甲".encode(), b"\x81\x20\xff\x30")), ["AR"], "not valid gb18030"),
        HostileStream("msh-only", frame(b"MSH"), ["AR"], "MSH"),
        HostileStream("msh-1-alphanumeric", frame(b"MSHA^~\\&A" + oru("ODD1")[9:]), ["AR"],
                      "field separator"),
        HostileStream("msh-2-three-characters", frame(oru("ODD2").replace(b"^~\\&|", b"^~\\|",
                                                                          1)),
                      ["AR"], "MSH-2"),
        HostileStream("msh-2-repeated-character", frame(oru("ODD3").replace(b"^~\\&", b"^^\\&",
                                                                            1)),
                      ["AR"], "MSH-2"),
        HostileStream("msh-2-letters", frame(oru("ODD4").replace(b"^~\\&", b"abcd", 1)), ["AR"],
                      "MSH-2", letter="location = 'MSH-2'"),
    ]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", [s.name for s in hostile_streams()])
def test_hostile_mllp_gets_ar_while_others_are_served(stage: Stage, name: str) -> None:
    case = next(s for s in hostile_streams() if s.name == name)
    port = stage.hub.settings.mllp_port

    async def go() -> tuple[bytes, list[str]]:
        good = GoodClient(port, f"G{abs(hash(name)) % 10_000:04d}-")
        serving = asyncio.create_task(good.run())
        await asyncio.sleep(0.2)
        answer = await raw_exchange(port, case.data, trickle=case.trickle,
                                    expect=len(case.codes), read_for=case.read_for)
        good.stop()
        await asyncio.wait_for(serving, 60)
        return answer, good.codes

    with watch_rss() as rss:
        answer, good_codes = asyncio.run(go())
    assert rss.growth < RSS_BOUND
    assert good_codes and set(good_codes) == {"AA"}, good_codes
    assert codes_in(answer) == case.codes, answer[:300]
    if case.words:
        assert case.words.encode() in answer, answer[:300]
    if case.letter:
        wait_for(lambda: stage.hub.query(
            f"SELECT count() FROM hutong.dead_letters WHERE {case.letter}")[0][0])  # noqa: S608


def test_a_sender_gone_mid_frame_is_counted(stage: Stage) -> None:
    """A peer that disconnects inside a frame got no ACK (it will resend); the metric says so."""
    def unfinished() -> float:
        text = httpx.get(f"{stage.hub.settings.api_url}/metrics", timeout=10).text
        for line in text.splitlines():
            if line.startswith('hutong_mllp_framing_errors_total{kind="unfinished"}'):
                return float(line.split()[-1])
        return 0.0

    before = unfinished()

    async def go() -> None:
        _, writer = await asyncio.open_connection("127.0.0.1", stage.hub.settings.mllp_port)
        writer.write(VT + oru("GONE1")[:50])
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    asyncio.run(go())
    wait_for(lambda: unfinished() > before, timeout=10)


def test_many_slow_senders_at_once_do_not_starve_a_good_one(stage: Stage) -> None:
    port = stage.hub.settings.mllp_port

    async def go() -> tuple[list[bytes], list[str]]:
        good = GoodClient(port, "MANYSLOW-")
        serving = asyncio.create_task(good.run())
        slow = [raw_exchange(port, VT + oru(f"SL{n}")[:30], trickle=0.15, read_for=20)
                for n in range(40)]
        answers = await asyncio.gather(*slow)
        good.stop()
        await asyncio.wait_for(serving, 60)
        return answers, good.codes

    answers, good_codes = asyncio.run(go())
    assert set(good_codes) == {"AA"} and len(good_codes) >= 5
    assert all(codes_in(a) == ["AR"] for a in answers)
