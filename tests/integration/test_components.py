"""A process that runs only the connectors, as the chart's connectors Deployment does.

It takes MLLP and HTTP ingest against the shared broker, ACKs after Kafka has the
message, reports only its own parts on /healthz, and opens no warehouse or
document store (the sinks and the API do that in their own processes).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
from confluent_kafka import Consumer

from connectors.facilities import hash_api_key
from connectors.mllp.client import MLLPClient
from hutong.config import Settings
from hutong.sender import ack_summary

from .conftest import RunningHub

pytestmark = pytest.mark.integration

KEY = "htk_components-test-key"
ORU = ("MSH|^~\\&|LIS|PARTHOSP|HUTONG|REGION|20261122093000||ORU^R01^ORU_R01|{cid}|P|2.4|||||"
       "|UNICODE UTF-8\rPID|1||MRN1^^^PARTHOSP^MR||测试||19491231|M\r"
       "OBR|1|P1|F1|BCP^生化^L|||20261122090000\rOBX|1|NM|K^钾^L||4.1|mmol/L|3.5-5.5|N|||F\r")


@pytest.fixture(scope="module")
def connectors(tmp_path_factory: pytest.TempPathFactory,
               hub_settings: Callable[..., Settings]) -> Iterator[RunningHub]:
    root = tmp_path_factory.mktemp("connectors")
    (root / "facilities.yaml").write_text(
        f"facilities:\n  - id: PARTHOSP\n    mllp_sources: [127.0.0.0/8]\n"
        f"    api_keys: [{hash_api_key(KEY)}]\n", encoding="utf-8")
    settings = hub_settings(root / "data", components=["connectors"], intake_open=False,
                            facilities_file=root / "facilities.yaml")
    running = RunningHub(settings).start()
    yield running
    running.stop()


def _raw_control_ids(bootstrap: str, wanted: set[str], timeout: float = 30) -> set[str]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4()}",
                         "auto.offset.reset": "earliest", "session.timeout.ms": 6000,
                         "fetch.wait.max.ms": 50})
    consumer.subscribe(["hutong.raw.hl7v2"])
    seen: set[str] = set()
    try:
        loop = asyncio.new_event_loop()
        deadline = loop.time() + timeout
        while not wanted <= seen and loop.time() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            seen |= {cid for cid in wanted if cid.encode() in (message.value() or b"")}
        loop.close()
    finally:
        consumer.close()
    return seen


def test_connectors_alone_ack_what_kafka_holds(connectors: RunningHub) -> None:
    async def go() -> tuple[str, str, str]:
        async with MLLPClient("127.0.0.1", connectors.settings.mllp_port) as client:
            return ack_summary(await client.send(ORU.format(cid="PART-1").encode()))

    assert asyncio.run(go())[0] == "AA"
    answer = httpx.post(f"{connectors.settings.api_url}/api/v1/ingest/hl7v2",
                        content=ORU.format(cid="PART-2").encode(),
                        headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    assert answer.status_code == 202, answer.text
    bootstrap = connectors.settings.bootstrap
    assert _raw_control_ids(bootstrap, {"PART-1", "PART-2"}) == {"PART-1", "PART-2"}


def test_connectors_alone_report_and_open_only_their_parts(connectors: RunningHub) -> None:
    health = httpx.get(f"{connectors.settings.api_url}/healthz").json()
    assert health == {"status": "ok", "components": {"mllp": "ok"}}
    hub = connectors.hub
    assert hub.warehouse is None and hub.documents is None and hub.sink is None
    assert not hub.streams and hub.terminology is None
    data_dir = connectors.settings.data_dir
    assert not (data_dir / "warehouse").exists() and not (data_dir / "documents.sqlite").exists()
    sql = httpx.post(f"{connectors.settings.api_url}/api/v1/sql", json={"query": "SELECT 1"})
    assert sql.status_code == 503, sql.text
