"""A real Prometheus (Debian's ``prometheus``) scrapes a real `hutong up`.

The hub runs as a subprocess with the demo registry; a few HL7 messages go in
(accepted from a registered facility, refused from an unregistered one, one a
registered facility got wrong); Prometheus scrapes ``/metrics`` every second,
and its query API must see the facility counts, the consumer lag, the last-message
time and the stream worker's stage counts (read from the worker's files by the hub).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.mllp.client import MLLPClient
from hutong.sender import ack_summary

from .conftest import free_port
from .processes import hub_env, serving

pytestmark = pytest.mark.integration

REPO = Path(__file__).parents[2]
PROMETHEUS = Path("/usr/bin/prometheus")

ORU = ("MSH|^~\\&|LIS|{facility}|HUTONG|REGION|20261201080000||ORU^R01^ORU_R01|{control}|P|2.4\r"
       "PID|1||{patient}^^^{facility}^MR||测试甲||19800101|F\r"
       "OBR|1|{control}P|{control}F|BCP^生化^L|||20261201075000\r"
       "OBX|{set_id}|NM|K^钾^L||4.0|mmol/L|3.5-5.5|N|||F\r")
ADT = ("MSH|^~\\&|HIS|{facility}|HUTONG|REGION|20261201080000||ADT^A01^ADT_A01|{control}|P|2.4\r"
       "EVN|A01|20261201080000\r"
       "PID|1||{patient}^^^{facility}^MR||测试乙||19750203|M\r"
       "PV1|1|I|内科^101^1\r")


@dataclass
class Up:
    proc: subprocess.Popen[bytes]
    http: str
    mllp_port: int
    log: Path


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    """`hutong up` on free ports, its own embedded broker, the demo facilities."""
    base = tmp_path_factory.mktemp("prometheus-hub")
    data_dir = base / "var"
    data_dir.mkdir()
    shutil.copy(REPO / "hutong" / "demo" / "facilities.yaml", data_dir / "facilities.yaml")
    env = hub_env(data_dir)
    mllp_port = int(env["HUTONG_MLLP_PORT"])
    http = f"http://127.0.0.1:{env['HUTONG_HTTP_PORT']}"
    with serving([sys.executable, "-m", "hutong", "up"], base / "up.log",
                 lambda: httpx.get(f"{http}/healthz", timeout=1).status_code == 200,
                 env=env, what="hutong up") as proc:
        yield Up(proc, http, mllp_port, base / "up.log")


@pytest.fixture(scope="module")
def prometheus(up: Up, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The Prometheus server scraping the hub every second; its base URL."""
    if not PROMETHEUS.exists():
        pytest.skip("/usr/bin/prometheus is not installed: run `make tools` (Debian's "
                    "prometheus package) to run this test")
    base = tmp_path_factory.mktemp("prometheus")
    config = base / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: hutong\n    metrics_path: /metrics\n"
        f"    static_configs:\n      - targets: ['{up.http.removeprefix('http://')}']\n",
        encoding="utf-8")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [str(PROMETHEUS), f"--config.file={config}", f"--storage.tsdb.path={base / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}"]
    with serving(argv, base / "prometheus.log",
                 lambda: httpx.get(f"{url}/-/ready", timeout=1).status_code == 200,
                 timeout=60, what="prometheus"):
        yield url


def send(up: Up, *messages: str) -> list[str]:
    async def go() -> list[str]:
        async with MLLPClient("127.0.0.1", up.mllp_port) as client:
            return [ack_summary(await client.send(m.encode()))[0] for m in messages]

    return asyncio.run(go())


def query(prometheus: str, promql: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": promql}, timeout=5)
    answer.raise_for_status()
    body = answer.json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def eventually(prometheus: str, promql: str, timeout: float = 90) -> list[dict[str, Any]]:
    """The result of ``promql`` once it is not empty."""
    deadline = time.monotonic() + timeout
    while True:
        result = query(prometheus, promql)
        if result:
            return result
        assert time.monotonic() < deadline, f"Prometheus has nothing for {promql}"
        time.sleep(0.5)


def value(series: dict[str, Any]) -> float:
    return float(series["value"][1])


def test_prometheus_scrapes_the_hub_and_sees_the_traffic(up: Up, prometheus: str) -> None:
    codes = send(
        up,
        ORU.format(facility="QSXRMYY", control="PROM-1", patient="P1", set_id=1),
        ADT.format(facility="QSXRMYY", control="PROM-2", patient="P2"),
        ORU.format(facility="NOBODY", control="PROM-3", patient="P3", set_id=1),
        ORU.format(facility="QSXRMYY", control="PROM-4", patient="P4", set_id=99999999999),
    )
    assert codes == ["AA", "AA", "AR", "AE"]
    sent_at = time.time()

    up_series = eventually(prometheus, 'up{job="hutong"} == 1')
    assert value(up_series[0]) == 1

    accepted = eventually(prometheus, 'hutong_facility_messages_total{facility="QSXRMYY",'
                                      'outcome="AA"}')
    assert {s["metric"]["message_type"]: value(s) for s in accepted} == {"ORU": 1, "ADT": 1}
    refused = eventually(prometheus, 'hutong_facility_messages_total{outcome="AR"} > 0')
    assert [(s["metric"]["facility"], value(s)) for s in refused] == [("unregistered", 1)]
    # registered facilities' refusals are exported from 0, so rate() sees the first ones
    assert query(prometheus, 'hutong_facility_messages_total{facility="QSXRMYY",'
                             'message_type="ADT",outcome="AR"} == 0')
    rejected = eventually(prometheus, "hutong_facility_rejected_total")
    assert {(s["metric"]["facility"], s["metric"]["reason"]): value(s) for s in rejected} == {
        ("unregistered", "unauthorised"): 1, ("QSXRMYY", "validation"): 1}
    assert not query(prometheus, 'hutong_facility_messages_total{facility="NOBODY"}')

    last = eventually(prometheus, "hutong_facility_last_message_timestamp_seconds")
    assert [s["metric"]["facility"] for s in last] == ["QSXRMYY"]
    assert sent_at - 60 < value(last[0]) <= sent_at + 1

    lag = eventually(prometheus, 'hutong_consumer_lag{group="hutong-sink-warehouse"}')
    assert "hutong.std.lab-result" in {s["metric"]["topic"] for s in lag}
    streams_lag = eventually(prometheus, 'hutong_consumer_lag{group="hutong-streams-standardize",'
                                         'topic="hutong.events.lab-result"}')
    assert len(streams_lag) == 1

    # the stream worker is a child process: its counts reach /metrics through its files
    linked = eventually(prometheus, 'hutong_stage_events_total{stage="empi",direction="out"} '
                                    '>= 2', timeout=120)
    assert value(linked[0]) >= 2
    # every stage's dead letters from 0 (so increase() sees the first), the hub's beside
    # its stream worker's, each series once
    letters = eventually(prometheus, "hutong_dead_letters_total")
    stages = [s["metric"]["stage"] for s in letters]
    assert {"producer", "warehouse-sink", "document-sink", "empi", "alerts"} <= set(stages)
    assert len(stages) == len(set(stages))
    eventually(prometheus, 'hutong_stage_latency_seconds_count{stage="translate"} > 0')
    eventually(prometheus, 'hutong_stage_events_total{stage="warehouse-sink",direction="out"}'
                           ' > 0')
    eventually(prometheus, 'hutong_consumer_lag{group="hutong-streams-standardize",'
                           'topic="hutong.events.lab-result"} == 0')
    components = eventually(prometheus, "hutong_component_up")
    assert {s["metric"]["component"]: value(s) for s in components}["stream worker 0"] == 1
    assert eventually(prometheus, "process_resident_memory_bytes")
    assert eventually(prometheus, 'hutong_sink_last_commit_timestamp_seconds{sink="warehouse"}')
