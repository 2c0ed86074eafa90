"""The resident master index on real parts: MLLP -> Tansu -> Faust (EMPI) -> chDB.

The same people arrive from three facilities with the variations real feeds
have (traditional characters, pinyin, a 15-digit or mistyped ID card, a health
card only, no card at all), alongside twins who share everything but their
names; each person must end with one EMPI id in ``patient_links``, and the
twins with two. Then a doubtful pair is reviewed and accepted through the API,
split again, an ADT^A40 merges two registrations, and a stream worker that lost
its local files recovers the index from its changelog.
"""

from __future__ import annotations

import re
import shutil
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, Producer

from hutong.config import Settings
from producers.idcard import check_character
from schemas import catalog, wire

from .conftest import RunningHub, send, wait_for

pytestmark = pytest.mark.integration


def _card(first17: str) -> str:
    return first17 + check_character(first17)


P1, P2, P3 = _card("11010519800315123"), _card("31010419920701234"), _card("44010619751102345")
P2_TYPO = P2[:10] + ("0" if P2[10] != "0" else "1") + P2[11:]  # the check character now fails
P1_SHORT = P1[:6] + P1[8:17]  # the 15-digit form of 1980s cards
HANGZHOU = "浙江省杭州市西湖区文三路100号"

#: (true person, facility, patient id, what the facility says)
RECORDS: list[tuple[int, str, str, dict[str, Any]]] = [
    (1, "EMPIA", "A1001", {"name": "张伟", "sex": "1", "dob": date(1980, 3, 15), "id_card": P1,
                           "phone": "13800000001", "address": "北京市朝阳区建国路88号"}),
    (1, "EMPIB", "B2001", {"name": "張偉", "sex": "M", "dob": date(1980, 3, 15),
                           "id_card": P1_SHORT}),
    (1, "EMPIC", "C3001", {"name": "ZHANG^WEI", "sex": "M", "dob": date(1980, 3, 15),
                           "phone": "138-0000-0001", "address": "朝阳区建国路88号"}),
    (2, "EMPIA", "A1002", {"name": "李娜", "sex": "2", "dob": date(1992, 7, 1), "id_card": P2,
                           "health_card": "HC310000000000001", "phone": "13900000002"}),
    (2, "EMPIB", "B2002", {"name": "李娜", "sex": "F", "dob": date(1992, 7, 1),
                           "health_card": "HC310000000000001"}),
    (2, "EMPIC", "C3002", {"name": "李娜", "sex": "2", "dob": date(1992, 7, 1),
                           "id_card": P2_TYPO, "phone": "13900000002"}),
    (3, "EMPIA", "A1003", {"name": "欧阳明", "sex": "1", "dob": date(1975, 11, 2),
                           "id_card": P3}),
    (3, "EMPIC", "C3003", {"name": "OUYANG^MING", "sex": "1", "dob": date(1975, 11, 2),
                           "id_card": P3}),
    # twins: one birthday, one phone, one home; only the given names differ
    (4, "EMPIA", "A1004", {"name": "王磊", "sex": "1", "dob": date(2010, 5, 6),
                           "phone": "13700000004", "address": HANGZHOU}),
    (5, "EMPIA", "A1005", {"name": "王鑫", "sex": "1", "dob": date(2010, 5, 6),
                           "phone": "13700000004", "address": HANGZHOU}),
    (4, "EMPIC", "C3004", {"name": "王磊", "sex": "1", "dob": date(2010, 5, 6),
                           "phone": "13700000004", "address": "杭州市西湖区文三路100号"}),
    (5, "EMPIC", "C3005", {"name": "王鑫", "sex": "1", "dob": date(2010, 5, 6),
                           "phone": "13700000004", "address": "西湖区文三路100号"}),
]
#: Too little to be sure (the day of birth differs, nothing else to go on): a person decides.
DOUBTFUL = [
    (7, "EMPIA", "A1007", {"name": "刘洋", "sex": "1", "dob": date(1988, 1, 1),
                           "phone": "13600000007"}),
    (7, "EMPIB", "B2007", {"name": "刘洋", "sex": "1", "dob": date(1988, 1, 10)}),
]
LAB = {"EMPIB"}  # the LIS sends results; the others register patients


def _pid(facility: str, mrn: str, p: dict[str, Any]) -> str:
    ids = [f"{mrn}^^^{facility}^MR"]
    if "id_card" in p:
        ids.append(f"{p['id_card']}^^^^SFZH")
    if "health_card" in p:
        ids.append(f"{p['health_card']}^^^^JKK")
    return (f"PID|1||{'~'.join(ids)}||{p['name']}||{p['dob']:%Y%m%d}|{p['sex']}|||"
            f"{p.get('address', '')}||{p.get('phone', '')}\r")


def message(facility: str, mrn: str, p: dict[str, Any], cid: str) -> bytes:
    """An ADT^A04 from a HIS, or an ORU^R01 from the LIS, for one record."""
    if facility in LAB:
        return (f"MSH|^~\\&|LIS|{facility}|HUTONG|REGION|20261204090000||ORU^R01^ORU_R01|{cid}|P|"
                f"2.4||||||UNICODE UTF-8\r{_pid(facility, mrn, p)}"
                f"OBR|1|{cid}P|{cid}F|BCP^生化^L|||20261204085000\r"
                "OBX|1|NM|K^钾^L||4.2|mmol/L|3.5-5.5|N|||F|||20261204085500\r").encode()
    return (f"MSH|^~\\&|HIS|{facility}|HUTONG|REGION|20261204090000||ADT^A04^ADT_A01|{cid}|P|"
            f"2.4||||||UNICODE UTF-8\rEVN|A04|20261204090000\r{_pid(facility, mrn, p)}"
            "PV1|1|O|MZ^^^01||||||||||||||||MZ0001\r").encode()


def send_records(hub: RunningHub, records: list[tuple[int, str, str, dict[str, Any]]],
                 tag: str) -> None:
    messages = [message(fac, mrn, p, f"{tag}{n:03d}") for n, (_, fac, mrn, p)
                in enumerate(records)]
    assert [code for code, _, _ in send(hub, *messages)] == ["AA"] * len(messages)


def current_links(hub: RunningHub) -> dict[tuple[str, str], str]:
    rows = hub.query("SELECT facility_id, source_patient_id, empi_id "
                     "FROM hutong.current_patient_links WHERE facility_id LIKE 'EMPI%'")
    return {(fac, mrn): empi for fac, mrn, empi in rows}


def linked(hub: RunningHub, keys: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """Wait until every record in ``keys`` has a link; return the current links."""
    return wait_for(lambda: (links := current_links(hub)) and all(k in links for k in keys)
                    and links)


def api(hub: RunningHub, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    response = httpx.request(method, f"{hub.settings.api_url}{path}", json=body, timeout=30)
    assert response.status_code < 300, response.text
    return response.json()


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory,
        hub_settings: Callable[..., Settings]) -> Iterator[RunningHub]:
    """A hub whose warehouse keeps facility ids as sent (``warehouse_identifiers: raw``),
    so these tests can follow each record by its MRN."""
    running = RunningHub(hub_settings(tmp_path_factory.mktemp("empi-hub"),
                                      warehouse_identifiers="raw")).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def linked_hub(hub: RunningHub) -> RunningHub:
    send_records(hub, RECORDS + DOUBTFUL, "EMPI")
    linked(hub, [(fac, mrn) for _, fac, mrn, _ in RECORDS + DOUBTFUL])
    return hub


def test_each_person_ends_with_one_empi_id(linked_hub: RunningHub) -> None:
    links = current_links(linked_hub)
    ids_of: dict[int, set[str]] = defaultdict(set)
    for person, fac, mrn, _ in RECORDS:
        ids_of[person].add(links[(fac, mrn)])
    assert all(len(ids) == 1 for ids in ids_of.values()), ids_of
    assert len({next(iter(ids)) for ids in ids_of.values()}) == len(ids_of)  # twins apart
    how = dict(((fac, mrn), by) for fac, mrn, by in linked_hub.query(
        "SELECT facility_id, source_patient_id, decided_by FROM hutong.current_patient_links "
        "WHERE facility_id LIKE 'EMPI%'"))
    # Results and registrations travel on different topics, so which record came first
    # varies; what linked the others does not.
    rules = {person: {how[(fac, mrn)] for p, fac, mrn, _ in RECORDS if p == person}
             for person in (1, 2)}
    assert rules == {1: {"fellegi-sunter", "id_card"}, 2: {"fellegi-sunter", "health_card"}}


def test_the_golden_record_gathers_the_best_of_each_record(
        linked_hub: RunningHub, kafka_bootstrap: str) -> None:
    empi_id = current_links(linked_hub)[("EMPIA", "A1001")]
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": "test-golden",
                         "auto.offset.reset": "earliest", "session.timeout.ms": 6000})
    consumer.subscribe(["hutong.empi.golden"])
    latest: dict[str, Any] | None = None
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (latest is None or latest["records"] < 3):
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error() and msg.key() == empi_id.encode():
                latest = wire.decode(msg.value())[1]
    finally:
        consumer.close()
    assert latest is not None
    assert (latest["facilities"], latest["id_card_number"], latest["name"], latest["phone"]) \
        == (["EMPIA", "EMPIB", "EMPIC"], P1, "张伟", "13800000001")


def test_standard_events_carry_the_empi_id(linked_hub: RunningHub) -> None:
    links = current_links(linked_hub)
    rows = wait_for(lambda: linked_hub.query(
        "SELECT source_patient_id, empi_id FROM hutong.lab_results "
        "WHERE facility_id = 'EMPIB' ORDER BY source_patient_id"))
    assert rows and all(empi == links[("EMPIB", mrn)] for mrn, empi in rows)


def test_a_doubtful_pair_waits_for_a_reviewer_who_merges_it_then_splits_it(
        linked_hub: RunningHub) -> None:
    hub = linked_hub
    links = current_links(hub)
    left, right = links[("EMPIA", "A1007")], links[("EMPIB", "B2007")]
    assert left != right
    pair = wait_for(lambda: [r for r in api(hub, "GET", "/api/v1/empi/reviews")
                             if {r["left_source_patient_id"], r["right_source_patient_id"]}
                             == {"A1007", "B2007"}])[0]
    assert 0.9 <= pair["score"] < 0.999 and pair["comparison"]["birth_date"] > 0
    answer = api(hub, "POST", f"/api/v1/empi/reviews/{pair['pair_id']}",
                 {"decision": "accept", "reviewer": "dr.zhou", "reason": "same patient, "
                  "date of birth mistyped"})
    assert answer["status"] == "accepted"
    merged = wait_for(lambda: (now := current_links(hub))[("EMPIA", "A1007")]
                      == now[("EMPIB", "B2007")] and now)
    survivor = merged[("EMPIA", "A1007")]
    assert hub.query("SELECT source_patient_id, previous_empi_id FROM hutong.patient_links "
                     "WHERE action = 'merge' AND decided_by = 'dr.zhou'") == [
        ("B2007" if survivor == left else "A1007", right if survivor == left else left)]
    assert wait_for(lambda: api(hub, "GET", "/api/v1/empi/reviews?status=linked"))
    response = httpx.post(f"{hub.settings.api_url}/api/v1/empi/reviews/{pair['pair_id']}",
                          json={"decision": "reject", "reviewer": "dr.li"}, timeout=30)
    assert response.status_code == 409  # decided already

    loser = right if survivor == left else left
    api(hub, "POST", "/api/v1/empi/unmerges", {"survivor_empi_id": survivor,
                                               "loser_empi_id": loser, "reviewer": "dr.zhou"})
    split = wait_for(lambda: (now := current_links(hub))[("EMPIA", "A1007")]
                     != now[("EMPIB", "B2007")] and now)
    assert {split[("EMPIA", "A1007")], split[("EMPIB", "B2007")]} == {left, right}
    assert hub.query("SELECT count() FROM hutong.patient_links WHERE action = 'unmerge' "
                     "AND decided_by = 'dr.zhou'") == [(1,)]


def test_an_unknown_pair_or_a_bad_request_is_answered_clearly(linked_hub: RunningHub) -> None:
    url = f"{linked_hub.settings.api_url}/api/v1/empi"
    missing = httpx.post(f"{url}/reviews/nosuchpair", json={"decision": "accept",
                                                            "reviewer": "dr.zhou"})
    assert (missing.status_code, "no review pair" in missing.text) == (404, True)
    assert httpx.post(f"{url}/reviews/x", json={"decision": "maybe",
                                                "reviewer": "dr.zhou"}).status_code == 422


def test_an_a40_merge_joins_two_registrations(linked_hub: RunningHub) -> None:
    hub = linked_hub
    first = {"name": "陈静", "sex": "2", "dob": date(1990, 2, 3), "phone": "13500000006"}
    second = {"name": "陈静", "sex": "2", "dob": date(1991, 8, 9)}  # registered in a hurry
    send_records(hub, [(6, "EMPIA", "A1006", first), (6, "EMPIA", "A1016", second)], "A40")
    before = linked(hub, [("EMPIA", "A1006"), ("EMPIA", "A1016")])
    assert before[("EMPIA", "A1006")] != before[("EMPIA", "A1016")]
    a40 = ("MSH|^~\\&|HIS|EMPIA|HUTONG|REGION|20261204100000||ADT^A40^ADT_A39|A40MERGE|P|2.5.1"
           "||||||UNICODE UTF-8\rEVN|A40|20261204100000\r"
           f"{_pid('EMPIA', 'A1006', first)}MRG|A1016^^^EMPIA^MR\r").encode()
    assert send(hub, a40)[0][0] == "AA"
    after = wait_for(lambda: (now := current_links(hub))[("EMPIA", "A1016")]
                     == now[("EMPIA", "A1006")] and now)
    assert after[("EMPIA", "A1006")] in set(before.values())
    assert hub.query("SELECT decided_by FROM hutong.current_patient_links "
                     "WHERE facility_id = 'EMPIA' AND source_patient_id IN ('A1006', 'A1016') "
                     "AND action = 'merge'") == [("facility:EMPIA",)]


def _records_on(bootstrap: str, topic: str, wanted: Callable[[Any], bool],
                count: int) -> list[Any]:
    """The first ``count`` records of ``topic`` that ``wanted`` takes (waits up to 30 s)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"test-{time.time()}",
                         "auto.offset.reset": "earliest", "session.timeout.ms": 6000})
    consumer.subscribe([topic])
    found: list[Any] = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(found) < count:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error() and wanted(msg):
                found.append(msg)
    finally:
        consumer.close()
    return found


def test_what_the_resolver_cannot_use_is_a_dead_letter(linked_hub: RunningHub,
                                                        kafka_bootstrap: str) -> None:
    decision = {"decision_id": "test-unknown-merge", "action": "merge", "pair_id": None,
                "survivor_empi_id": "E-NO-SUCH-1", "loser_empi_id": "E-NO-SUCH-2",
                "decided_by": "dr.zhou", "reason": None, "decided_at": datetime.now(UTC)}
    counted = _empi_dead_letters(linked_hub)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce("hutong.empi.decisions", key=b"test-unknown-merge",
                     value=wire.encode(catalog.schema("empi-decision"), decision))
    producer.produce("hutong.empi.resolve", key=b"EMPIA|garbage", value=b"not an event")
    assert producer.flush(10) == 0

    def stream_letter(msg: Any) -> bool:
        letter = wire.decode(msg.value())[1]
        return bool(letter["stage"] == "stream" and letter["original_key"] in (
            b"test-unknown-merge", b"EMPIA|garbage"))

    letters = {m.key(): wire.decode(m.value())[1]
               for m in _records_on(kafka_bootstrap, "hutong.dlq", stream_letter, 2)}
    assert letters[b"test-unknown-merge"]["reason"] == \
        "merge: no EMPI id 'E-NO-SUCH-1' in the index"
    assert letters[b"EMPIA|garbage"]["source_topic"] == "hutong.empi.resolve"
    # counted once Kafka confirmed them, once each
    assert wait_for(lambda: _empi_dead_letters(linked_hub) >= counted + 2)
    time.sleep(1.0)
    assert _empi_dead_letters(linked_hub) == counted + 2


def _empi_dead_letters(hub: RunningHub) -> float:
    """The stream worker's EMPI dead letters, as the hub's ``/metrics`` shows them."""
    text = httpx.get(f"{hub.settings.api_url}/metrics", timeout=10).text
    found = re.search(r'^hutong_dead_letters_total\{stage="empi"\} ([0-9.e+]+)$', text,
                      re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_a_merged_away_empi_id_gets_a_tombstone(linked_hub: RunningHub,
                                                kafka_bootstrap: str) -> None:
    hub = linked_hub
    first = {"name": "周敏", "sex": "2", "dob": date(1985, 4, 5), "phone": "13500000008"}
    second = {"name": "周敏", "sex": "2", "dob": date(1986, 9, 9)}
    send_records(hub, [(8, "EMPIA", "A1008", first), (8, "EMPIA", "A1018", second)], "TOMB")
    before = linked(hub, [("EMPIA", "A1008"), ("EMPIA", "A1018")])
    gone = before[("EMPIA", "A1018")]
    assert gone != before[("EMPIA", "A1008")]
    a40 = ("MSH|^~\\&|HIS|EMPIA|HUTONG|REGION|20261204110000||ADT^A40^ADT_A39|A40TOMB|P|2.5.1"
           "||||||UNICODE UTF-8\rEVN|A40|20261204110000\r"
           f"{_pid('EMPIA', 'A1008', first)}MRG|A1018^^^EMPIA^MR\r").encode()
    assert send(hub, a40)[0][0] == "AA"
    [tombstone] = _records_on(kafka_bootstrap, "hutong.empi.golden",
                              lambda m: m.key() == gone.encode() and m.value() is None, 1)
    assert tombstone.value() is None


def test_a_worker_that_lost_its_files_recovers_the_index(linked_hub: RunningHub) -> None:
    hub = linked_hub
    worker = hub.hub.streams[0]
    assert worker.process is not None
    worker.process.kill()  # kill -9: no clean shutdown
    worker.process.wait(10)
    shutil.rmtree(hub.settings.data_dir / "streams", ignore_errors=True)
    wait_for(worker.alive)  # the hub restarts it; it rebuilds both tables from the changelogs
    # A new facility knows the man only by his ID card: the recovered index must link it.
    send_records(hub, [(1, "EMPID", "D4001", {"name": "张伟", "sex": "1",
                                              "dob": date(1980, 3, 15), "id_card": P1})], "RCV")
    links = wait_for(lambda: (now := current_links(hub)).get(("EMPID", "D4001")) and now,
                     timeout=90)
    assert links[("EMPID", "D4001")] == links[("EMPIA", "A1001")]
