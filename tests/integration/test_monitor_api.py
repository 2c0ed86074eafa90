"""The exchange monitor's API on a real chDB warehouse: roles, what each list says, and
that no answer carries a patient's name, id or a message's bytes.

The warehouse keeps raw identifiers here (``warehouse_identifiers: raw``), the
least protected setting, so what stays out is left out by the monitor itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from connectors.facilities import Facility, FacilityRegistry, hash_api_key
from hutong.api.app import create_api
from hutong.metrics import Metrics
from hutong.monitor.status import BUCKET_S, BUCKETS, bucket_start
from hutong.users import User, Users
from producers.intake import Intake
from producers.records import DLQ_TOPIC
from sinks.base import Decoded
from sinks.warehouse import Warehouse, WarehouseWriter, migrate, open_warehouse
from sinks.warehouse.sink import WarehouseSink
from tests.warehouse_events import IDENTITY_VALUES, SAMPLES

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
TOKENS = {"ops": "tok-admin", "li.analyst": "tok-analyst", "dr.wang": "tok-clinician"}
ROLES: dict[str, list[Any]] = {"ops": ["admin"], "li.analyst": ["analyst"],
                               "dr.wang": ["clinician"]}
PAYLOAD = "MSH|^~\\&|LIS|FAILHOSP|||20261204||ORU^R01|F2|P|2.4\rPID|1||P123||张三\r".encode()
ENDPOINTS = ["/api/v1/monitor/facilities", "/api/v1/monitor/series",
             "/api/v1/monitor/dead-letters", "/api/v1/monitor/unmapped",
             "/api/v1/monitor/alerts", "/api/v1/monitor/reviews", "/api/v1/monitor/overview"]


def ago(**delta: float) -> datetime:
    return NOW - timedelta(**delta)


def order(facility: str, control: str, received: datetime, n: int = 0) -> dict[str, Any]:
    return SAMPLES["order"](event_id=f"{facility}-{control}-{n}", facility_id=facility,
                            message_control_id=control, received_at=received)


def letter(letter_id: str, failed: datetime, **overrides: Any) -> dict[str, Any]:
    return {"dead_letter_id": letter_id, "stage": "producer",
            "reason": "message has no OBR segment", "error_code": "100", "location": "OBR",
            "facility_id": "FAILHOSP", "source_topic": None, "source_partition": None,
            "source_offset": None, "original_key": b"FAILHOSP|F2", "payload": PAYLOAD,
            "failed_at": failed, **overrides}


def alert(alert_id: str, status: str, level: int, deadline: datetime | None,
          **overrides: Any) -> dict[str, Any]:
    return {"alert_id": alert_id, "event_id": f"ev-{alert_id}", "empi_id": "E-42",
            "facility_id": "OKHOSP", "source_patient_id": "P123", "visit_number": "V1",
            "source_event_type": "lab-result", "test_code": "K01", "test_name": "钾",
            "standard_code": "2823-3", "value": "6.8", "unit": "mmol/L", "standard_value": 6.8,
            "standard_unit": "mmol/L", "reference_range": "3.5-5.5", "observed_at": ago(minutes=9),
            "rule_id": "potassium-high", "rule_description": "potassium > 6.2 mmol/L",
            "rule_set": "default", "severity": "critical", "ordering_provider_id": "D0042",
            "ordering_department": "内科", "raised_at": ago(minutes=8), "status": status,
            "escalation_level": level, "notify": "ordering-provider", "deadline": deadline,
            "status_at": ago(minutes=8 - level), "acknowledged_by": None,
            "acknowledged_at": None, "ack_channel": None, **overrides}


def review(pair_id: str, status: str, score: float) -> dict[str, Any]:
    return {"pair_id": pair_id, "left_facility_id": "OKHOSP", "left_source_patient_id": "P123",
            "right_facility_id": "QUIETHOSP", "right_source_patient_id": "Q-77",
            "left_empi_id": "E-1", "right_empi_id": "E-2", "score": score,
            "comparison": {"name": 4.2, "birth_date": 3.1, "phone": -2.0}, "status": status,
            "created_at": ago(hours=2), "decided_by": None if status == "open" else "ops",
            "decided_at": None if status == "open" else ago(hours=1)}


def fill(wh: Warehouse) -> None:
    writer = WarehouseWriter(wh)
    writer.write("order", [
        order("OKHOSP", "M1", ago(minutes=2), 0), order("OKHOSP", "M1", ago(minutes=2), 1),
        order("OKHOSP", "M0", ago(hours=30)),
        order("QUIETHOSP", "Q1", ago(minutes=20)),
        order("SILENTHOSP", "S1", ago(hours=3)),
        order("FAILHOSP", "F1", ago(minutes=5)),
    ])
    sink = WarehouseSink(wh, Metrics())  # dead letters through the sink: it adds the position
    assert sink.write([
        Decoded(DLQ_TOPIC, 0, 41, "dead-letter", letter("dl-fail-1", ago(minutes=4))),
        Decoded(DLQ_TOPIC, 1, 7, "dead-letter", letter("dl-fail-2", ago(minutes=3),
                                                       location="MLLP")),
        Decoded(DLQ_TOPIC, 0, 42, "dead-letter", letter(
            "dl-stream", ago(minutes=1), stage="stream", facility_id=None,
            reason="no such alert", location="hutong.alerts.ack[0]@3")),
        Decoded(DLQ_TOPIC, 0, 3, "dead-letter", letter("dl-old", ago(days=3))),
    ]) == []
    writer.write("unmapped-code", [
        {"facility_id": "OKHOSP", "code_system": "lab-test", "local_code": "NA1",
         "local_display": "钠", "count": 12, "first_seen": ago(hours=5),
         "last_seen": ago(minutes=2)},
        {"facility_id": "OKHOSP", "code_system": "lab-test", "local_code": "CL1",
         "local_display": "氯", "count": 3, "first_seen": ago(hours=5), "last_seen": ago(hours=1)},
        {"facility_id": "OKHOSP", "code_system": "lab-test", "local_code": "K01",
         "local_display": "钾", "count": 40, "first_seen": ago(hours=5), "last_seen": ago(hours=1)},
    ])
    writer.write("concept-map", [
        {"facility_id": "OKHOSP", "source_system": "lab-test", "local_code": "K01",
         "target_system": "LOINC", "target_code": "2823-3", "target_display": None,
         "map_version": "1", "updated_at": ago(minutes=30), "deleted": False}])
    writer.write("critical-alert", [
        alert("AL-1", "raised", 0, ago(minutes=3)),  # its first deadline passed...
        alert("AL-1", "escalated", 1, NOW + timedelta(minutes=5), notify="on-duty-doctor"),
        alert("AL-2", "raised", 0, NOW + timedelta(minutes=9), raised_at=ago(minutes=1)),
        alert("AL-3", "raised", 0, ago(minutes=1)),
        alert("AL-3", "acknowledged", 0, None, acknowledged_by="dr.wang",
              acknowledged_at=ago(minutes=2)),
        alert("AL-4", "escalated", 2, None, notify="medical-affairs"),  # the last step
    ])
    writer.write("empi-review", [review("PAIR-1", "open", 0.93), review("PAIR-2", "open", 0.81),
                                 review("PAIR-3", "open", 0.97),
                                 review("PAIR-3", "linked", 0.97)])


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    with open_warehouse(None, tmp_path_factory.mktemp("monitor")) as wh:
        migrate(wh)
        fill(wh)
        yield wh


def users() -> Users:
    return Users([User(name=name, roles=ROLES[name], tokens=[hash_api_key(token)])
                  for name, token in TOKENS.items()])


def registry() -> FacilityRegistry:
    return FacilityRegistry([Facility(id="OKHOSP", name="清水县人民医院"),
                             Facility(id="NEWHOSP", name="新建乡卫生院")])


def api(warehouse: Warehouse, with_users: bool = True) -> FastAPI:
    return create_api(Metrics(), warehouse=warehouse, users=users() if with_users else None,
                      facilities=registry())


@pytest.fixture
async def client(warehouse: Warehouse) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=api(warehouse), client=("10.20.0.5", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub",
                                 headers={"Authorization": f"Bearer {TOKENS['ops']}"}) as http:
        yield http


def as_(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name]}"}


@pytest.mark.parametrize("path", ENDPOINTS)
async def test_only_admins_see_the_monitor(warehouse: Warehouse, path: str) -> None:
    transport = httpx.ASGITransport(app=api(warehouse), client=("10.20.0.5", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
        assert (await http.get(path)).status_code == 401
        assert (await http.get(path, headers={"Authorization": "Bearer nope"})).status_code == 401
        assert (await http.get(path, headers=as_("li.analyst"))).status_code == 403
        assert (await http.get(path, headers=as_("dr.wang"))).status_code == 403
        assert (await http.get(path, headers=as_("ops"))).status_code == 200
        retry = "/api/v1/monitor/dead-letters/dl-fail-1/retry"
        assert (await http.post(retry)).status_code == 401
        assert (await http.post(retry, headers=as_("li.analyst"))).status_code == 403


async def test_without_users_this_machine_is_admin_and_other_hosts_are_refused(
        warehouse: Warehouse) -> None:
    app = api(warehouse, with_users=False)
    for host, expected in (("127.0.0.1", 200), ("10.20.0.5", 403)):
        transport = httpx.ASGITransport(app=app, client=(host, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            assert (await http.get("/api/v1/monitor/facilities")).status_code == expected


async def test_facilities_have_a_status_from_what_they_sent(client: httpx.AsyncClient) -> None:
    answer = (await client.get("/api/v1/monitor/facilities")).json()
    found = {f["facility_id"]: f for f in answer["items"]}
    assert [f["facility_id"] for f in answer["items"]] == [
        "FAILHOSP", "NEWHOSP", "SILENTHOSP", "QUIETHOSP", "OKHOSP"]  # worst first
    assert {k: found["OKHOSP"][k] for k in (
        "status", "name", "registered", "messages_hour", "messages_day", "errors_hour",
        "error_rate_hour")} == {
        "status": "ok", "name": "清水县人民医院", "registered": True,
        "messages_hour": 1, "messages_day": 1, "errors_hour": 0,
        "error_rate_hour": 0.0}  # M1 had two events: one message; M0 was 30 hours ago
    assert datetime.fromisoformat(found["OKHOSP"]["last_message_at"]) == \
        ago(minutes=2).replace(microsecond=ago(minutes=2).microsecond // 1000 * 1000)
    assert (found["QUIETHOSP"]["status"], found["QUIETHOSP"]["registered"]) == ("quiet", False)
    assert (found["SILENTHOSP"]["status"], found["SILENTHOSP"]["messages_hour"],
            found["SILENTHOSP"]["messages_day"]) == ("silent", 0, 1)
    assert (found["NEWHOSP"]["status"], found["NEWHOSP"]["last_message_at"],
            found["NEWHOSP"]["messages_day"]) == ("silent", None, 0)
    failing = found["FAILHOSP"]
    assert (failing["status"], failing["messages_hour"], failing["errors_hour"],
            failing["errors_day"], failing["error_rate_hour"]) == ("failing", 1, 2, 2, 0.6667)
    assert failing["last_error_at"] is not None
    assert answer["thresholds"] == {"quiet_after_s": 900.0, "silent_after_s": 3600.0,
                                    "failing_error_rate": 0.2}
    relaxed = (await client.get("/api/v1/monitor/facilities",
                                params={"quiet_after_s": 3600, "silent_after_s": 4 * 3600,
                                        "failing_error_rate": 0.9})).json()
    assert {f["facility_id"]: f["status"] for f in relaxed["items"]} == {
        "FAILHOSP": "ok", "NEWHOSP": "silent", "SILENTHOSP": "quiet", "QUIETHOSP": "ok",
        "OKHOSP": "ok"}
    bad = await client.get("/api/v1/monitor/facilities",
                           params={"quiet_after_s": 600, "silent_after_s": 60})
    assert bad.status_code == 422


async def test_the_series_counts_messages_and_dead_letters_per_five_minutes(
        client: httpx.AsyncClient) -> None:
    answer = (await client.get("/api/v1/monitor/series")).json()
    start = datetime.fromisoformat(answer["start"])
    assert (answer["bucket_s"], answer["buckets"]) == (BUCKET_S, BUCKETS)
    assert start == bucket_start(NOW) or start > bucket_start(NOW)  # the clock moved on

    def bucket(moment: datetime) -> int:
        return int((moment - start).total_seconds() // BUCKET_S)

    ok = answer["facilities"]["OKHOSP"]
    assert len(ok["messages"]) == BUCKETS and sum(ok["messages"]) == 1  # M0 is too old
    assert ok["messages"][bucket(ago(minutes=2))] == 1
    failing = answer["facilities"]["FAILHOSP"]
    assert (sum(failing["messages"]), sum(failing["errors"])) == (1, 2)
    assert "NEWHOSP" not in answer["facilities"]
    one = (await client.get("/api/v1/monitor/series", params={"facility": "QUIETHOSP"})).json()
    assert list(one["facilities"]) == ["QUIETHOSP"]


async def test_dead_letters_say_why_and_whether_a_retry_can_help(
        client: httpx.AsyncClient) -> None:
    answer = (await client.get("/api/v1/monitor/dead-letters")).json()
    assert answer["total"] == 3  # dl-old is three days old
    letters = {d["dead_letter_id"]: d for d in answer["items"]}
    assert [d["dead_letter_id"] for d in answer["items"]] == ["dl-stream", "dl-fail-2",
                                                              "dl-fail-1"]
    first = letters["dl-fail-1"]
    assert {k: first[k] for k in ("stage", "reason", "error_code", "location", "facility_id",
                                  "payload_size", "dlq_partition", "dlq_offset", "retryable",
                                  "not_retryable", "last_retry")} == {
        "stage": "producer", "reason": "message has no OBR segment", "error_code": "100",
        "location": "OBR", "facility_id": "FAILHOSP", "payload_size": len(PAYLOAD),
        "dlq_partition": 0, "dlq_offset": 41, "retryable": True, "not_retryable": None,
        "last_retry": None}
    assert "payload" not in first
    assert not letters["dl-fail-2"]["retryable"]
    assert "first bytes" in letters["dl-fail-2"]["not_retryable"]
    assert "stream stage" in letters["dl-stream"]["not_retryable"]
    week = (await client.get("/api/v1/monitor/dead-letters",
                             params={"hours": 24 * 7, "facility": "FAILHOSP", "limit": 1})).json()
    assert (week["total"], [d["dead_letter_id"] for d in week["items"]]) == (3, ["dl-fail-2"])


async def test_retry_answers_what_stands_in_its_way(client: httpx.AsyncClient) -> None:
    base = "/api/v1/monitor/dead-letters"
    assert (await client.post(f"{base}/nope/retry")).status_code == 404
    refused = await client.post(f"{base}/dl-stream/retry")
    assert refused.status_code == 409 and "stream stage" in refused.json()["detail"]
    partial = await client.post(f"{base}/dl-fail-2/retry")
    assert partial.status_code == 409 and "first bytes" in partial.json()["detail"]
    no_intake = await client.post(f"{base}/dl-fail-1/retry")  # this API runs no intake
    assert no_intake.status_code == 503


async def test_unmapped_codes_leave_out_what_a_map_covers_now(client: httpx.AsyncClient) -> None:
    answer = (await client.get("/api/v1/monitor/unmapped")).json()
    assert answer["total"] == 2
    assert [(u["local_code"], u["local_display"], u["count"]) for u in answer["items"]] == [
        ("NA1", "钠", 12), ("CL1", "氯", 3)]


async def test_open_alerts_carry_their_current_deadline(client: httpx.AsyncClient) -> None:
    answer = (await client.get("/api/v1/monitor/alerts")).json()
    assert answer["total"] == 3  # AL-3 is acknowledged
    assert [(a["alert_id"], a["state"], a["escalation_level"], a["notify"])
            for a in answer["items"]] == [
        ("AL-1", "escalated", 1, "on-duty-doctor"),  # the nearest deadline first
        ("AL-2", "raised", 0, "ordering-provider"),
        ("AL-4", "escalated", 2, "medical-affairs")]  # no further deadline: last
    first = answer["items"][0]
    assert datetime.fromisoformat(first["deadline"]) > NOW
    assert datetime.fromisoformat(first["raised_at"]) < NOW
    assert answer["items"][2]["deadline"] is None
    assert (first["value"], first["unit"], first["standard_code"]) == ("6.8", "mmol/L", "2823-3")


async def test_the_review_queue_holds_open_pairs_only(client: httpx.AsyncClient) -> None:
    answer = (await client.get("/api/v1/monitor/reviews")).json()
    assert [(r["pair_id"], r["score"]) for r in answer["items"]] == [("PAIR-1", 0.93),
                                                                     ("PAIR-2", 0.81)]
    assert answer["items"][0]["comparison"] == {"name": 4.2, "birth_date": 3.1, "phone": -2.0}


async def test_no_answer_names_a_patient_or_carries_bytes(client: httpx.AsyncClient) -> None:
    text = (await client.get("/api/v1/monitor/overview")).text
    for value in (*IDENTITY_VALUES, "P123", "Q-77", "E-42", "MSH|", "李四医生"):
        assert value not in text


async def test_the_console_page_and_its_files(warehouse: Warehouse) -> None:
    transport = httpx.ASGITransport(app=api(warehouse), client=("10.20.0.5", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as anonymous:
        page = await anonymous.get("/console")  # the page holds no data: no token needed
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "交换监控" in page.text and "script-src 'self'" in page.headers[
            "content-security-policy"]
        for name, kind in (("console.js", "text/javascript"), ("console.css", "text/css")):
            asset = await anonymous.get(f"/console/{name}")
            assert asset.status_code == 200 and asset.headers["content-type"].startswith(kind)
        assert (await anonymous.get("/console/index.html")).status_code == 404
        assert (await anonymous.get("/console/..%2Fapp.py")).status_code == 404
        script = (await anonymous.get("/console/console.js")).text
        assert "http://" not in script.replace("http://www.w3.org/2000/svg", "")
        assert "innerHTML" not in script


class _Letters:
    """hutong.dlq as the retry reads it: dl-fail-1's message, fixed meanwhile (an OBR)."""

    MESSAGE = ("MSH|^~\\&|LIS|FAILHOSP|HUTONG|REGION|20261204093000||ORU^R01^ORU_R01|F2|P|2.4\r"
               "PID|1||P123^^^FAILHOSP^MR||张三||19800101|F\r"
               "OBR|1|F2P|F2F|BCP^生化^L|||20261204090000\r"
               "OBX|1|NM|K^钾^L||4.0|mmol/L|3.5-5.5|N|||F\r").encode()

    def fetch(self, partition: int, offset: int) -> dict[str, Any]:
        assert (partition, offset) == (0, 41)
        return {"dead_letter_id": "dl-fail-1", "payload": self.MESSAGE}


class _Kafka:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    async def send(self, records: Any) -> None:
        self.sent.extend(records)


async def test_an_api_without_connectors_retries_and_an_accepted_letter_is_no_failure(
        warehouse: Warehouse) -> None:
    """The chart's API pods run no connectors: they retry through an intake of their own
    (``retry_intake``) and still take no ingest. A letter whose retry was accepted no
    longer counts against its facility."""
    facilities = FacilityRegistry([*registry().facilities(), Facility(id="FAILHOSP")])
    kafka = _Kafka()
    intake = Intake(kafka, Metrics(), registry=facilities)  # type: ignore[arg-type]
    app = create_api(Metrics(), warehouse=warehouse, users=users(), facilities=facilities,
                     dead_letters=_Letters(), retry_intake=intake)
    transport = httpx.ASGITransport(app=app, client=("10.20.0.5", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub",
                                 headers=as_("ops")) as http:
        before = {f["facility_id"]: f for f in
                  (await http.get("/api/v1/monitor/facilities")).json()["items"]}
        assert (before["FAILHOSP"]["errors_hour"], before["FAILHOSP"]["errors_day"]) == (2, 2)

        retried = await http.post("/api/v1/monitor/dead-letters/dl-fail-1/retry")
        assert retried.status_code == 200, retried.text
        assert (retried.json()["outcome"], retried.json()["stored"]) == ("AA", True)
        assert kafka.sent  # through the API's own intake

        after = {f["facility_id"]: f for f in
                 (await http.get("/api/v1/monitor/facilities")).json()["items"]}
        assert (after["FAILHOSP"]["errors_hour"], after["FAILHOSP"]["errors_day"]) == (1, 1)
        assert after["FAILHOSP"]["error_rate_hour"] == 0.5
        line = (await http.get("/api/v1/monitor/series",
                               params={"facility": "FAILHOSP"})).json()["facilities"]["FAILHOSP"]
        assert sum(line["errors"]) == 1
        listed = (await http.get("/api/v1/monitor/dead-letters")).json()["items"]
        assert [d["last_retry"]["outcome"] for d in listed
                if d["dead_letter_id"] == "dl-fail-1"] == ["AA"]  # still listed, with it

        ingest = await http.post("/api/v1/ingest/hl7v2", content=_Letters.MESSAGE,
                                 headers={"Authorization": "Bearer whatever"})
        assert ingest.status_code == 503  # ingest stays with the connectors
