"""Two hubs on one machine (issue 10): a district reporting up to the city, the city's
dictionary coming down.

The city is a `hutong up` subprocess (a chDB warehouse per process), the district a
hub in this process; each has its own embedded broker and data directory. The
district is a platform facility at the city (kind 区域卫生信息平台) holding an API key.

- A result sent to the district appears at the city exactly once, translated with
  the map the city published; a mental-health diagnosis arrives de-identified.
- The city goes down: the district keeps taking results, its forwarder fails and
  counts it; the city comes back and what was sent meanwhile arrives, once each,
  even when sent again.
- A code map uploaded at the city reaches the district with the city's version;
  where the district's own map says otherwise, the district's stays and the
  conflict is reported. The city's critical-value lists come down the same way.
"""

from __future__ import annotations

import base64
import contextlib
import json
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from prometheus_client import CollectorRegistry

from connectors.facilities import hash_api_key
from hutong.config import Settings
from hutong.federation.config import Federation
from hutong.federation.forwarder import KafkaForwarder
from hutong.metrics import Metrics
from hutong.users import add_user
from schemas import wire
from schemas.registry import EMBEDDED
from sinks.base import Decoded

from .conftest import PSEUDONYM_KEY, RunningHub, broker_of_its_own, free_port, send, wait_for
from .processes import hub_env, serving

pytestmark = pytest.mark.integration

PLATFORM_KEY = "htk_district-platform-key"
CITY_FACILITIES = f"""facilities:
  - id: QSX-PLATFORM
    name: 清水县全民健康信息平台
    kind: 区域卫生信息平台
    api_keys: ["{hash_api_key(PLATFORM_KEY)}"]
  - id: HOSP-NOT-PLATFORM
    name: 某医院
    kind: 综合医院
    level: 二级乙等
    region_code: "620521"
    api_keys: ["{hash_api_key('htk_a-hospital-key')}"]
  - id: QSXRMYY
    name: 清水县人民医院
    kind: 综合医院
    level: 二级甲等
    community: QSX-PLATFORM       # the district forwards for it
  - id: CITYHOSP
    name: 市第一人民医院            # sends to the city itself
    kind: 综合医院
"""
DISTRICT_FACILITIES = """facilities:
  - id: QSXRMYY
    name: 清水县人民医院
    kind: 综合医院
    mllp_sources: [127.0.0.0/8]
"""
#: The district's own map for GLU, which the city will contradict.
DISTRICT_MAPS = ("facility_id,source_system,local_code,target_system,target_code,"
                 "target_display,map_version\n"
                 "QSXRMYY,lab-test,GLU,LOINC,2345-7,Glucose,qsx-local-1\n")
CITY_MAPS = ("facility_id,source_system,local_code,target_system,target_code,"
             "target_display,map_version\n"
             "QSXRMYY,lab-test,K-LOCAL,LOINC,2823-3,Potassium,city-2026.12\n"
             "QSXRMYY,lab-test,GLU,LOINC,2339-0,Glucose,city-2026.12\n")


CITY_LIST = 'version: "city-1"\nlabel: 市级危急值目录（医共体）\n'
DISTRICT_LIST = 'version: "district-7"\nlabel: 乡镇卫生院自定目录\n'


def msh(control: str, kind: str) -> str:
    return (f"MSH|^~\\&|HIS|QSXRMYY|HUTONG|REGION|20261205093000||{kind}|{control}|P|2.4"
            "|||||CHN|UNICODE UTF-8\r")


def oru(control: str, patient: str, code: str = "K-LOCAL", value: str = "4.2") -> bytes:
    return (msh(control, "ORU^R01^ORU_R01")
            + f"PID|1||{patient}^^^QSXRMYY^MR||李四||19800101|M\r"
            + "OBR|1|P1|F1|BCP^生化^L|||20261205090000\r"
            + f"OBX|1|NM|{code}^钾^L||{value}|mmol/L|3.5-5.5|N|||F\r").encode()


def diagnosis(control: str, patient: str, code: str) -> bytes:
    return (msh(control, "ADT^A01^ADT_A01") + "EVN|A01|20261205090000\r"
            + f"PID|1||{patient}^^^QSXRMYY^MR||王五||19700101|F|||某街1号||13800000000\r"
            + "PV1|1|I|0301^312^03||||||||||||||||ZY01\r"
            + f"DG1|1||{code}^抑郁发作^ICD10|||A\r").encode()


class City:
    """The city hub: a subprocess, stopped and started again on the same data dir."""

    def __init__(self, data_dir: Path, bootstrap: str) -> None:
        self.data_dir = data_dir
        # a broker apart, as a city's Kafka would be: it keeps the topics while the hub
        # is down (the embedded one keeps them in memory only)
        self.env = {**hub_env(data_dir), "HUTONG_KAFKA_BOOTSTRAP": bootstrap}
        self.api = f"http://127.0.0.1:{self.env['HUTONG_HTTP_PORT']}"
        self.bootstrap = bootstrap
        self.admin = add_user(data_dir / "users.yaml", "city.ops", ["admin"])
        (data_dir / "facilities.yaml").write_text(CITY_FACILITIES, encoding="utf-8")
        lists = data_dir / "critical-values"
        lists.mkdir()
        (lists / "QSXRMYY.yaml").write_text(CITY_LIST, encoding="utf-8")
        (lists / "XZWSY.yaml").write_text(CITY_LIST.replace("city", "city-x"), encoding="utf-8")
        self._stack = contextlib.ExitStack()

    def start(self) -> City:
        self._stack.enter_context(serving(
            [sys.executable, "-m", "hutong", "up"], self.data_dir / "city.log", self._ready,
            env={**self.env, "HUTONG_PSEUDONYM_KEY": "city-pseudonym-key-for-the-test"},
            what="the city hub"))
        return self

    def stop(self) -> None:
        self._stack.close()

    def _ready(self) -> bool:
        return httpx.get(f"{self.api}/healthz", timeout=2).status_code == 200

    def sql(self, query: str) -> list[list[Any]]:
        answer = httpx.post(f"{self.api}/api/v1/sql", json={"query": query}, timeout=30,
                            headers={"Authorization": f"Bearer {self.admin}"})
        assert answer.status_code == 200, answer.text
        return [list(row) for row in answer.json()["rows"]]

    def upload_maps(self) -> None:
        """The city's code maps (publishing them again changes nothing)."""
        upload = httpx.post(f"{self.api}/api/v1/terminology/maps", content=CITY_MAPS.encode(),
                            params={"name": "city.csv"}, timeout=30,
                            headers={"Authorization": f"Bearer {self.admin}",
                                     "content-type": "text/csv"})
        assert upload.status_code == 202, upload.text

    def lab_row(self, event_id: str) -> list[list[Any]]:
        """(count, standard code, map version) of one event in the city's lab_results."""
        checked = str(uuid.UUID(event_id))  # an event id is a UUID: safe to put in the text
        return self.sql("SELECT count(), any(standard_code), any(map_version) "  # noqa: S608
                        f"FROM lab_results WHERE event_id = '{checked}'")

    def events(self, topic: str) -> list[dict[str, Any]]:
        return topic_records(self.bootstrap, topic)


def topic_records(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """Every record on a topic, decoded."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "t-read",
                         "enable.partition.eof": True, "enable.auto.commit": False})
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        unread, found = set(parts), []
        while unread:
            for msg in consumer.consume(500, timeout=1):
                if msg.error() is None:
                    found.append(wire.decode(msg.value())[1])
                elif msg.error().code() == KafkaError._PARTITION_EOF:
                    unread.discard(msg.partition())
        return found
    finally:
        consumer.close()


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[City]:
    with broker_of_its_own(tmp_path_factory.mktemp("city-kafka")) as broker:
        started = City(tmp_path_factory.mktemp("city"), broker.bootstrap).start()
        yield started
        started.stop()


@pytest.fixture(scope="module")
def district(tmp_path_factory: pytest.TempPathFactory, city: City) -> Iterator[RunningHub]:
    data_dir = tmp_path_factory.mktemp("district")
    (data_dir / "facilities.yaml").write_text(DISTRICT_FACILITIES, encoding="utf-8")
    (data_dir / "terminology").mkdir()
    (data_dir / "terminology" / "local.csv").write_text(DISTRICT_MAPS, encoding="utf-8")
    (data_dir / "critical-values").mkdir()
    (data_dir / "critical-values" / "XZWSY.yaml").write_text(DISTRICT_LIST, encoding="utf-8")
    (data_dir / "federation.yaml").write_text(json.dumps({
        "platform_id": "QSX-PLATFORM",
        "up": {"mode": "http", "url": f"{city.api}/api/v1/ingest/federation",
               "api_key": PLATFORM_KEY, "timeout_s": 5,
               "rules": [{"name": "精神卫生", "codes": ["F00-F99"], "action": "deidentify"}]},
        "down": {"name": "CITY", "bootstrap": city.bootstrap}}), encoding="utf-8")
    settings = Settings(data_dir=data_dir, kafka_port=free_port(), mllp_host="127.0.0.1",
                        mllp_port=free_port(), http_host="127.0.0.1", http_port=free_port(),
                        clickhouse_http_port=free_port(), pseudonym_key=PSEUDONYM_KEY,
                        api_token="district-admin-token")
    running = RunningHub(settings).start()
    yield running
    running.stop()


def district_api(hub: RunningHub, path: str) -> Any:
    answer = httpx.get(f"{hub.settings.api_url}{path}", timeout=30,
                       headers={"Authorization": "Bearer district-admin-token"})
    assert answer.status_code == 200, answer.text
    return answer.json()


def event_id_at_district(hub: RunningHub, control: str, table: str = "lab_results") -> str:
    rows = wait_for(lambda: hub.query(
        f"SELECT event_id FROM {table} WHERE message_control_id = {{c:String}}",  # noqa: S608
        {"c": control}))
    return str(rows[0][0])


def test_the_citys_critical_value_lists_come_down_and_the_districts_own_stays(
        city: City, district: RunningHub) -> None:
    district_kafka = f"127.0.0.1:{district.settings.kafka_port}"
    [came] = wait_for(lambda: [r for r in topic_records(district_kafka,
                                                        "hutong.alerts.rule-files")
                               if r["name"] == "QSXRMYY.yaml" and r["origin"] == "CITY"])
    assert came["content"] == CITY_LIST  # beside the district's own lists, for its workers
    status = wait_for(lambda: (s := district_api(district, "/api/v1/federation"))["down"]
                      ["rule-file"]["conflicts"] and s)
    [conflict] = status["down"]["rule-file"]["conflicts"]
    assert (conflict["kind"], conflict["key"]) == ("rule-file", "XZWSY.yaml")
    folder = district.settings.critical_values_path
    assert (folder / "XZWSY.yaml").read_text(encoding="utf-8") == DISTRICT_LIST  # kept


def test_the_citys_institutions_come_down_without_their_keys_and_ours_stay(
        city: City, district: RunningHub) -> None:
    new = wait_for(lambda: _district_facility(district, "HOSP-NOT-PLATFORM"))
    assert (new["name"], new["level"], new["region_code"], new["changed_by"]) == (
        "某医院", "二级乙等", "620521", "federation:CITY")
    assert (new["api_keys"], new["mllp_sources"]) == (0, [])  # no way in from above
    status = wait_for(lambda: (s := district_api(district, "/api/v1/federation"))["down"]
                      ["facility"]["conflicts"] and s)
    [conflict] = status["down"]["facility"]["conflicts"]
    assert conflict["key"] == "QSXRMYY" and "二级甲等" in conflict["upstream_target"]
    ours = _district_facility(district, "QSXRMYY")
    assert (ours["level"], ours["mllp_sources"]) == (None, ["127.0.0.0/8"])  # kept


def _district_facility(district: RunningHub, facility_id: str) -> dict[str, Any] | None:
    answer = httpx.get(f"{district.settings.api_url}/api/v1/facilities/{facility_id}",
                       timeout=10, headers={"Authorization": "Bearer district-admin-token"})
    return answer.json() if answer.status_code == 200 else None


def test_the_citys_dictionary_comes_down_and_a_conflict_is_reported(
        city: City, district: RunningHub) -> None:
    city.upload_maps()
    status = wait_for(lambda: (s := district_api(district, "/api/v1/federation"))["down"]
                      ["code-map"]["conflicts"] and s)
    [conflict] = status["down"]["code-map"]["conflicts"]
    assert (conflict["key"], conflict["local_target"], conflict["upstream_target"]) == (
        "QSXRMYY|lab-test|GLU", "LOINC 2345-7", "LOINC 2339-0")
    maps = wait_for(lambda: {(m["local_code"], m["target_code"], m["map_version"])
                             for m in district_api(district, "/api/v1/terminology/maps")}
                    >= {("K-LOCAL", "2823-3", "city-2026.12")} and
                    district_api(district, "/api/v1/terminology/maps"))
    assert {(m["local_code"], m["target_code"]) for m in maps} == {
        ("K-LOCAL", "2823-3"), ("GLU", "2345-7")}  # the district's own GLU stays


def test_a_result_reaches_the_city_once_and_a_mental_health_diagnosis_de_identified(
        city: City, district: RunningHub) -> None:
    city.upload_maps()  # as the test before did: K-LOCAL is the city's potassium
    wait_for(lambda: any(m["local_code"] == "K-LOCAL" for m in district_api(
        district, "/api/v1/terminology/maps")))
    assert send(district, oru("D-1", "P100", value="6.8"),
                diagnosis("D-2", "P200", "F32.900"))[0][0] == "AA"
    lab = event_id_at_district(district, "D-1")
    rows = wait_for(lambda: city.lab_row(lab)[0][0] and city.lab_row(lab), timeout=90)
    [[count, code, version]] = rows
    assert (count, code) == (1, "2823-3")  # once, translated with the city's map:
    assert version.split("+")[0] == "city-2026.12"  # its version (and the built-in units')

    dx = event_id_at_district(district, "D-2", "diagnoses")
    [arrived] = wait_for(lambda: [e for e in city.events("hutong.events.diagnosis")
                                  if e["event_id"] == dx])
    patient = arrived["patient"]
    assert (patient["name"], patient["id_card_number"], patient["phone"],
            patient["address"], patient["birth_date"]) == (None,) * 5
    assert arrived["source_patient_id"].startswith("ps_") and "P200" not in json.dumps(
        arrived, default=str)
    assert any("精神卫生" in w for w in arrived["quality_warnings"])
    copies = [e for e in city.events("hutong.events.lab-result") if e["event_id"] == lab]
    assert copies and all(e["patient"]["name"] == "李四" and e["empi_id"] is None
                          for e in copies)  # at least once: a slow answer may mean two


def test_only_a_platform_may_forward_and_a_bad_batch_writes_nothing(city: City) -> None:
    url = f"{city.api}/api/v1/ingest/federation"
    hospital = httpx.post(url, json={"platform": "x", "events": []}, timeout=10,
                          headers={"Authorization": "Bearer htk_a-hospital-key"})
    assert hospital.status_code == 403
    assert httpx.post(url, json={"events": []}, timeout=10).status_code == 401
    bad = httpx.post(url, timeout=10, headers={"Authorization": f"Bearer {PLATFORM_KEY}"},
                     json={"platform": "QSX-PLATFORM", "events": [
                         {"topic": "hutong.events.lab-result",
                          "value": base64.b64encode(b"\x00\x00\x00\x00\x04junk").decode()},
                         {"topic": "hutong.raw.hl7v2", "value": ""},
                         {"topic": "hutong.events.diagnosis", "value": base64.b64encode(
                             wire.encode(EMBEDDED.for_topic("hutong.events.diagnosis"),
                                         {**diagnosis_event("e-city", "I10"),
                                          "facility_id": "CITYHOSP"})).decode()}]})
    assert bad.status_code == 422
    refused = bad.json()["refused"]
    assert [r["index"] for r in refused] == [0, 1, 2]
    assert "sends to this hub itself" in refused[2]["reason"]  # no speaking for others
    garbage = httpx.post(url, content=b"not json", timeout=10,
                         headers={"Authorization": f"Bearer {PLATFORM_KEY}"})
    assert garbage.status_code == 400


def test_after_a_city_outage_what_was_sent_meanwhile_arrives_once_each(
        city: City, district: RunningHub) -> None:
    before = _failures(district)
    city.stop()
    try:
        assert send(district, oru("D-3", "P300"))[0][0] == "AA"  # the district goes on
        wait_for(lambda: _failures(district) > before, timeout=60)  # counted, retrying
    finally:
        city.start()
    lab = event_id_at_district(district, "D-3")
    wait_for(lambda: city.lab_row(lab)[0][0], timeout=120)
    # the same events again (an answer lost on the way): still one row each
    again = httpx.post(f"{city.api}/api/v1/ingest/federation", timeout=30,
                       headers={"Authorization": f"Bearer {PLATFORM_KEY}"},
                       json={"platform": "QSX-PLATFORM", "events": [
                           {"topic": "hutong.events.lab-result",
                            "key": base64.b64encode(b"QSXRMYY|P300").decode(),
                            "value": base64.b64encode(e).decode()}
                           for e in _district_std(district, lab)]})
    assert again.status_code == 202, again.text
    # a later result of the same patient follows the resend through every partition of
    # the city's pipeline: once it is in, a second row of the first would be too
    assert send(district, oru("D-4", "P300"))[0][0] == "AA"
    later = event_id_at_district(district, "D-4")
    wait_for(lambda: city.lab_row(later)[0][0], timeout=120)
    assert city.lab_row(lab)[0][0] == 1


def _failures(district: RunningHub) -> float:
    text = httpx.get(f"{district.settings.api_url}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith("hutong_federation_failures_total "):
            return float(line.split()[1])
    return 0.0


def _district_std(district: RunningHub, event_id: str) -> list[bytes]:
    """The district's standardized record of ``event_id`` as it goes up (wire bytes)."""
    entry = EMBEDDED.for_topic("hutong.events.lab-result")
    return [wire.encode(entry, {**event, "empi_id": None})
            for event in topic_records(f"127.0.0.1:{district.settings.kafka_port}",
                                       "hutong.std.lab-result")
            if event["event_id"] == event_id]


def test_kafka_mode_writes_to_the_upstream_clusters_event_topics(kafka_bootstrap: str) -> None:
    """The other way up: the upstream's Kafka (here the shared test broker), confirmed by
    it before the forwarder returns; a de-identified event there too."""
    federation = Federation.model_validate({"platform_id": "QSX-PLATFORM", "up": {
        "mode": "kafka", "bootstrap": kafka_bootstrap, "timeout_s": 10,
        "rules": [{"name": "精神卫生", "codes": ["F00-F99"]}]}})
    metrics = Metrics(CollectorRegistry())
    forward = KafkaForwarder(federation, metrics, lambda value: "ps_" + value[::-1])
    marker = uuid.uuid4().hex
    event = diagnosis_event(f"kafka-{marker}", "F20.000")
    try:
        assert forward.write([Decoded("hutong.std.diagnosis", 0, 1, "diagnosis", event)]) == []
    finally:
        forward.close()
    [arrived] = [e for e in topic_records(kafka_bootstrap, "hutong.events.diagnosis")
                 if e["event_id"] == f"kafka-{marker}"]
    assert arrived["patient"]["name"] is None and arrived["source_patient_id"] == "ps_1-NRM"
    assert metrics.registry.get_sample_value("hutong_federation_events_total",
                                             {"outcome": "deidentified"}) == 1


def diagnosis_event(event_id: str, code: str) -> dict[str, Any]:
    """A standardized diagnosis event as the district holds it."""
    return {"event_id": event_id, "event_type": "diagnosis", "facility_id": "QSXRMYY",
            "source_system": "HIS", "message_control_id": "M1", "source_patient_id": "MRN-1",
            "empi_id": "E-1", "occurred_at": None,
            "received_at": datetime(2026, 12, 5, 8, tzinfo=UTC),
            "patient": {"source_patient_id": "MRN-1", "name": "赵六", "sex": "M",
                        "id_card_number": None, "health_card_number": None, "phone": None,
                        "address": None, "birth_date": None, "identifiers": []},
            "quality_warnings": [], "map_version": None, "codes": [], "unmapped": [],
            "set_id": 1, "diagnosis_code": code, "diagnosis_system": "I10",
            "diagnosis_name": None, "diagnosis_type": None, "priority": 1,
            "diagnosed_at": None, "clinician_id": None, "clinician_name": None,
            "visit_number": None, "practitioner_id": None, "practitioner_status": None}
