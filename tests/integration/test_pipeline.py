"""The vertical slice on real parts: MLLP -> Tansu -> Faust -> chDB, and back out."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext, SerializationError

from connectors.mllp.client import MLLPClient
from connectors.mllp.framing import frame
from hutong.config import Settings
from hutong.errors import HutongError
from hutong.query import run_query
from hutong.sender import ack_summary
from schemas import wire

from .conftest import RunningHub, send, wait_for

pytestmark = pytest.mark.integration

ORU = (
    "MSH|^~\\&|LIS|TESTHOSP|HUTONG|REGION|20261120093000||ORU^R01^ORU_R01|{cid}|P|2.4||||||"
    "UNICODE UTF-8\r"
    "PID|1||MRN{cid}^^^TESTHOSP^MR~{id_card}^^^^SFZH||测试甲||19491231|M\r"
    "OBR|1|{cid}P|{cid}F|BCP^生化^L|||20261120090000||||||||血清\r"
    "OBX|1|NM|K^钾^L||{value}|mmol/L|3.5-5.5|{flag}|||F|||20261120092500\r"
)


def oru(cid: str, value: str = "4.2", flag: str = "N",
        id_card: str = "11010519491231002X") -> bytes:
    return ORU.format(cid=cid, value=value, flag=flag, id_card=id_card).encode()








def consume_one(bootstrap: str, topic: str, group: str, match: Callable[[bytes], bool]) -> Any:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "auto.offset.reset": "earliest", "session.timeout.ms": 6000,
                         "heartbeat.interval.ms": 1000})
    consumer.subscribe([topic])
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            try:
                if match(msg.value()):
                    return msg
            except (HutongError, SerializationError):
                continue  # other tests put undecodable records on these topics on purpose
    finally:
        consumer.close()
    raise AssertionError(f"no matching message on {topic}")


def test_oru_over_mllp_is_acked_and_lands_in_the_warehouse(hub: RunningHub) -> None:
    [(code, control_id, _)] = send(hub, oru("PIPE0001", "4.2"))
    assert (code, control_id) == ("AA", "PIPE0001")
    rows = wait_for(lambda: hub.query(
        "SELECT facility_id, test_code, value_numeric, unit, message_control_id "
        "FROM hutong.lab_results WHERE message_control_id = {cid:String}",
        {"cid": "PIPE0001"}))
    assert rows == [("TESTHOSP", "K", 4.2, "mmol/L", "PIPE0001")]


def test_a_resent_message_is_acked_again_and_not_doubled(hub: RunningHub) -> None:
    count_sql = ("SELECT count() FROM hutong.lab_results "
                 "WHERE message_control_id = {cid:String}")
    codes = send(hub, oru("PIPE0002"), oru("PIPE0002"))  # likely one sink batch
    assert [c[0] for c in codes] == ["AA", "AA"]
    wait_for(lambda: hub.query(count_sql, {"cid": "PIPE0002"})[0][0] >= 1)
    assert send(hub, oru("PIPE0002"))[0][0] == "AA"  # a later batch: the row exists already
    marker = send(hub, oru("PIPE0008"))  # sent after the resend, so written after it
    wait_for(lambda: hub.query(count_sql, {"cid": "PIPE0008"})[0][0] >= 1)
    assert marker[0][0] == "AA"
    assert hub.query(count_sql, {"cid": "PIPE0002"}) == [(1,)]


def test_malformed_message_gets_a_nak_naming_the_field_and_a_dead_letter(
        hub: RunningHub, kafka_bootstrap: str) -> None:
    [(code, control_id, text)] = send(hub, oru("PIPE0003", value="abc"))
    assert (code, control_id) == ("AE", "PIPE0003")
    assert "OBX[1]-5" in text
    assert "abc" not in text  # errors name the place, never the value
    msg = consume_one(kafka_bootstrap, "hutong.dlq", "test-dlq-reader",
                      lambda v: wire.decode(v)[1]["original_key"] == b"TESTHOSP|PIPE0003")
    headers = dict(msg.headers())
    assert headers["hutong.stage"] == b"producer"
    assert b"OBX[1]-5" in headers["hutong.location"]
    letter = wire.decode(msg.value())[1]
    assert letter["payload"] == oru("PIPE0003", value="abc")
    wait_for(lambda: hub.query(
        "SELECT stage, location FROM hutong.dead_letters WHERE facility_id = 'TESTHOSP' "
        "AND location LIKE 'OBX[1]-5%'"))


def test_garbage_gets_ar_a_dead_letter_and_the_connection_keeps_serving(
        hub: RunningHub) -> None:
    codes = send(hub, b"this is not HL7 at all PIPE0004", oru("PIPE0004"))
    assert [c[0] for c in codes] == ["AR", "AA"]
    garbage = len(b"this is not HL7 at all PIPE0004")
    letters = wait_for(lambda: hub.query(
        "SELECT payload FROM hutong.dead_letters WHERE payload_size = {n:UInt64} "
        "AND stage = 'producer'", {"n": garbage}))
    assert letters == [("",)]  # pseudonymised warehouse: the bytes stay on hutong.dlq


def test_oversize_frame_is_refused_and_recorded_while_others_keep_flowing(
        hub: RunningHub) -> None:
    from connectors.mllp.framing import frame

    async def go() -> tuple[bytes, list[tuple[str, str, str]]]:
        reader, writer = await asyncio.open_connection("127.0.0.1", hub.settings.mllp_port)
        big = b"MSH|^~\\&|LIS|TESTHOSP|||||ORU^R01|BIG1|P|2.4\r" + b"X" * (
            hub.settings.mllp_max_frame_bytes + 10)
        writer.write(frame(big))
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 30)  # read to EOF: the hub closes
        writer.close()
        async with MLLPClient("127.0.0.1", hub.settings.mllp_port) as other:
            acks = [ack_summary(await other.send(oru("PIPE0009")))]
        return answer, acks

    answer, acks = asyncio.run(go())
    assert b"MSA|AR" in answer and b"limit" in answer
    assert acks[0][0] == "AA"
    letters = wait_for(lambda: hub.query(
        "SELECT payload_size FROM hutong.dead_letters WHERE location = 'MLLP'"))
    assert 0 < letters[0][0] <= 1024  # the head of the frame, not the whole of it


def test_std_topic_decodes_with_the_confluent_registry_client(
        hub: RunningHub, kafka_bootstrap: str) -> None:
    send(hub, oru("PIPE0005", "6.9", "HH"))
    ctx = SerializationContext("hutong.std.lab-result", MessageField.VALUE)
    with SchemaRegistryClient({"url": hub.settings.api_url}) as registry:
        deserializer = AvroDeserializer(registry)
        msg = consume_one(kafka_bootstrap, "hutong.std.lab-result", "test-registry-reader",
                          lambda v: deserializer(v, ctx)["message_control_id"] == "PIPE0005")
        event = deserializer(msg.value(), ctx)
    assert event["test_code"] == "K"
    assert event["value_numeric"] == 6.9
    assert event["abnormal_flags"] == ["HH"]
    assert event["patient"]["name"] == "测试甲"


def test_health_metrics_and_sql_through_the_api(hub: RunningHub) -> None:
    send(hub, oru("PIPE0006"))
    health = httpx.get(f"{hub.settings.api_url}/healthz").json()
    assert health["status"] == "ok", health
    metrics = httpx.get(f"{hub.settings.api_url}/metrics").text
    assert 'hutong_messages_received_total{event_type="oru",outcome="AA",transport="mllp"}' \
        in metrics
    wait_for(lambda: hub.query("SELECT count() FROM hutong.lab_results "
                               "WHERE message_control_id = 'PIPE0006'")[0][0])
    columns, rows = run_query(hub.settings, "SELECT message_control_id FROM hutong.lab_results "
                                            "WHERE message_control_id = 'PIPE0006'")
    assert (columns, rows) == (["message_control_id"], [["PIPE0006"]])
    for query in ("DROP TABLE hutong.lab_results",
                  "SELECT * FROM file('/etc/hostname', 'LineAsString')",
                  "SELECT 1 INTO OUTFILE '/tmp/hutong-should-not-exist'"):
        refused = httpx.post(f"{hub.settings.api_url}/api/v1/sql", json={"query": query})
        assert refused.status_code == 400, query


def test_data_dir_and_ports_in_use_are_named(hub: RunningHub,
                                              hub_settings: Callable[..., Settings],
                                              tmp_path: Path) -> None:
    from hutong.errors import ResourceBusy
    from hutong.hub import Hub

    same_dir = Hub(hub_settings(hub.settings.data_dir))
    with pytest.raises(ResourceBusy, match=r"data directory .* is in use"):
        asyncio.run(same_dir.start())
    same_port = Hub(hub_settings(tmp_path, mllp_port=hub.settings.mllp_port))
    with pytest.raises(ResourceBusy, match=f"port {hub.settings.mllp_port} \\(MLLP\\)"):
        asyncio.run(same_port.start())


def test_every_query_in_the_analyst_guide_runs(hub: RunningHub) -> None:
    guide = (Path(__file__).parents[2] / "docs" / "analytics.md").read_text()
    blocks = re.findall(r"```sql\n(.*?)```", guide, flags=re.S)
    assert len(blocks) >= 4
    [(code, _, _)] = send(hub, oru("PIPE0007", id_card="110105194912310021"))  # bad check char
    assert code == "AA"  # a data-quality warning, not a rejection
    warnings = wait_for(lambda: hub.query(
        "SELECT quality_warnings FROM hutong.lab_results WHERE message_control_id = 'PIPE0007'"))
    assert "check" in warnings[0][0][0] and "110105194912310021" not in warnings[0][0][0]
    for sql in blocks:  # through the API analysts use: refusal rules and readonly=1 apply
        assert run_query(hub.settings, sql)[0], sql  # test_analytics checks the answers


def test_undecodable_records_become_stream_and_sink_dead_letters(
        hub: RunningHub, kafka_bootstrap: str) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce("hutong.events.lab-result", key=b"x", value=b"\x00\x00\x00\x00\x04junk-ev")
    producer.produce("hutong.std.lab-result", key=b"y", value=b"not avro at all")
    assert producer.flush(10) == 0
    rows = wait_for(lambda: (lambda found: found if len(found) == 2 else None)(sorted(hub.query(
        "SELECT DISTINCT stage, source_topic FROM hutong.dead_letters "
        "WHERE stage IN ('stream', 'sink')"))))
    assert ("sink", "hutong.std.lab-result") in rows
    assert ("stream", "hutong.events.lab-result") in rows


@pytest.mark.parametrize(("msh18", "cid"), [("GB 18030-2000", "GB180301"), ("", "GB180302")])
def test_gb18030_names_round_trip_and_the_ack_speaks_the_senders_charset(
        hub: RunningHub, kafka_bootstrap: str, msh18: str, cid: str) -> None:
    text = (ORU.format(cid=cid, value="4.0", flag="N", id_card="11010519491231002X")
            .replace("UNICODE UTF-8", msh18).replace("测试甲", "欧阳测试"))
    payload = text.encode("gb18030")
    with pytest.raises(UnicodeDecodeError):
        payload.decode("utf-8")  # really not UTF-8

    async def go() -> bytes:
        async with MLLPClient("127.0.0.1", hub.settings.mllp_port) as client:
            return await client.send(payload)

    ack = asyncio.run(go())
    assert ack_summary(ack)[0] == "AA"
    if msh18:
        assert f"|{msh18}".encode() in ack  # the ACK declares and uses the sender's charset
    ctx_topic = "hutong.std.lab-result"
    msg = consume_one(kafka_bootstrap, ctx_topic, f"test-gb-{cid}",
                      lambda v: wire.decode(v)[1]["message_control_id"] == cid)
    event = wire.decode(msg.value())[1]
    assert event["patient"]["name"] == "欧阳测试"
    assert event["test_name"] == "钾"


def test_each_pipelined_frame_gets_its_own_deadline(hub: RunningHub) -> None:
    """A frame that began in the same read as the end of a slow one is not cut off by the
    slow one's deadline (the hub's frame timeout is 2 s here)."""
    first, second = frame(oru("PIPE0001")), frame(oru("PIPE0002"))

    async def go() -> list[bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", hub.settings.mllp_port)
        writer.write(first[:40])  # the first frame's deadline starts
        await asyncio.sleep(1.5)
        writer.write(first[40:] + second[:40])  # its end and the second frame's start
        await asyncio.sleep(1.5)  # past the first frame's deadline, within the second's
        writer.write(second[40:])
        answers = [await asyncio.wait_for(reader.readuntil(b"\x1c\r"), 20) for _ in range(2)]
        writer.close()
        return answers

    assert [ack_summary(a.strip(b"\x0b\x1c\r"))[0] for a in asyncio.run(go())] == ["AA", "AA"]


def test_a_sender_stalling_mid_frame_is_cut_off_answered_and_recorded(hub: RunningHub) -> None:
    async def go() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", hub.settings.mllp_port)
        writer.write(b"\x0b" + oru("STALL001")[:60])  # half a frame, then silence
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 30)  # the hub answers and closes
        writer.close()
        return answer

    answer = asyncio.run(go())
    assert b"MSA|AR" in answer and b"not completed" in answer
    wait_for(lambda: hub.query(
        "SELECT count() FROM hutong.dead_letters WHERE location = 'MLLP' "
        "AND position(reason, 'not completed') > 0")[0][0])
