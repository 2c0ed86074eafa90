"""Code translation on real parts: maps from the folder and the API, unmapped codes, replay.

A facility sends results under local codes. A code the folder's map covers is
translated to LOINC (and its unit normalised); one no map covers passes with
its local code, is marked unmapped, and shows up for data stewards. A map is
then uploaded through the API, the facility's messages are replayed from the
raw topic, and the warehouse ends up corrected with no duplicate row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hutong.config import Settings
from producers.replay import Window, replay

from .conftest import RunningHub, send, wait_for

pytestmark = pytest.mark.integration

FACILITY = "TERMHOSP"
FOLDER_MAP = (
    "facility_id,source_system,local_code,target_system,target_code,target_display\n"
    f"{FACILITY},lab-test,K01,LOINC,2823-3,Potassium [Moles/volume] in Serum or Plasma\n"
    f"{FACILITY},lab-test,GLU9,LOINC,2345-7,Glucose [Mass/volume] in Serum or Plasma\n"
)
UPLOADED_MAP = (
    "facility_id,source_system,local_code,target_system,target_code\n"
    f"{FACILITY},lab-test,CR77,LOINC,14682-9\n"
)


def oru(cid: str, code: str, value: str, unit: str, name: str = "检验") -> bytes:
    return (f"MSH|^~\\&|LIS|{FACILITY}|HUTONG|REGION|20261204093000||ORU^R01^ORU_R01|{cid}|P|"
            "2.4||||||UNICODE UTF-8\r"
            f"PID|1||T{cid}^^^{FACILITY}^MR||测试丙||19700101|F\r"
            f"OBR|1|{cid}P|{cid}F|BCP^生化^L|||20261204090000\r"
            f"OBX|1|NM|{code}^{name}^L||{value}|{unit}|||||F|||20261204092500\r").encode()


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory,
        hub_settings: Callable[..., Settings]) -> Iterator[RunningHub]:
    data_dir = tmp_path_factory.mktemp("terminology-hub")
    (data_dir / "terminology").mkdir()
    (data_dir / "terminology" / "termhosp.csv").write_text(FOLDER_MAP, encoding="utf-8-sig")
    running = RunningHub(hub_settings(data_dir, terminology_poll_s=0.5)).start()
    yield running
    running.stop()


def rows(hub: RunningHub, sql: str) -> list[tuple[Any, ...]]:
    return hub.query(sql, {"f": FACILITY})


def test_a_mapped_code_is_translated_and_its_unit_converted(hub: RunningHub) -> None:
    assert [code for code, _, _ in send(hub, oru("TRM001", "K01", "6.8", "mmol/l"),
                                        oru("TRM002", "GLU9", "90", "mg/dL"))] == ["AA", "AA"]
    found = wait_for(lambda: (got := rows(hub, (
        "SELECT test_code, standard_code, standard_system, standard_value, standard_unit, "
        "map_version, unmapped FROM hutong.lab_results WHERE facility_id = {f:String} "
        "AND test_code IN ('K01', 'GLU9') ORDER BY test_code"))) and len(got) == 2 and got)
    glucose, potassium = found
    assert potassium[:5] == ("K01", "2823-3", "LOINC", 6.8, "mmol/L")
    assert glucose[:3] == ("GLU9", "2345-7", "LOINC")
    assert (round(glucose[3], 2), glucose[4]) == (5.0, "mmol/L")  # 90 mg/dL of glucose
    assert potassium[5] is not None and potassium[6] == []


def test_an_unmapped_code_passes_marked_then_a_map_and_a_replay_correct_it(
        hub: RunningHub, kafka_bootstrap: str) -> None:
    sent = send(hub, oru("TRM010", "CR77", "120", "umol/L", "肌酐"),
                oru("TRM011", "CR77", "480", "umol/L", "肌酐"))
    assert [code for code, _, _ in sent] == ["AA", "AA"]
    before = wait_for(lambda: (got := rows(hub, (
        "SELECT event_id, standard_code, unmapped, map_version FROM hutong.lab_results "
        "WHERE facility_id = {f:String} AND test_code = 'CR77' ORDER BY event_id")))
        and len(got) == 2 and got)
    assert all(code is None and unmapped == ["test_code"] for _, code, unmapped, _ in before)
    steward = wait_for(lambda: rows(hub, (
        "SELECT local_code, local_display, count, mapped_now FROM hutong.unmapped_code_summary "
        "WHERE facility_id = {f:String} AND local_code = 'CR77'")))
    assert steward == [("CR77", "肌酐", 2, False)]
    listed = httpx.get(f"{hub.settings.api_url}/api/v1/terminology/unmapped",
                       params={"facility": FACILITY}).json()
    assert [row["local_code"] for row in listed] == ["CR77"]

    bad = httpx.post(f"{hub.settings.api_url}/api/v1/terminology/maps",
                     content=UPLOADED_MAP.replace("14682-9", "14682-0").encode(),
                     headers={"content-type": "text/csv"})
    assert bad.status_code == 422 and bad.json()["problems"][0].startswith("upload.csv:2:")
    good = httpx.post(f"{hub.settings.api_url}/api/v1/terminology/maps",
                      content=UPLOADED_MAP.encode(), headers={"content-type": "text/csv"})
    assert (good.status_code, good.json()["published"]) == (202, 1)
    wait_for(lambda: rows(hub, "SELECT 1 FROM hutong.current_concept_maps "
                               "WHERE facility_id = {f:String} AND local_code = 'CR77'"))

    facility_rows = "SELECT count() FROM hutong.lab_results WHERE facility_id = {f:String}"
    held = rows(hub, facility_rows)  # with the module's other tests' results, if they ran
    report = replay({"bootstrap.servers": kafka_bootstrap}, Window(FACILITY))
    assert report.matched >= 2 and report.failed == 0
    after = wait_for(lambda: (got := rows(hub, (
        "SELECT event_id, standard_code, unmapped, map_version FROM hutong.lab_results "
        "WHERE facility_id = {f:String} AND test_code = 'CR77' ORDER BY event_id")))
        and all(code == "14682-9" for _, code, _, _ in got) and got)
    assert [row[0] for row in after] == [row[0] for row in before]  # the same rows, replaced
    assert all(unmapped == [] and version != old[3] for (_, _, unmapped, version), old
               in zip(after, before, strict=True))
    assert rows(hub, facility_rows) == held  # every replayed row replaced, none added
    assert rows(hub, "SELECT mapped_now FROM hutong.unmapped_code_summary "
                     "WHERE facility_id = {f:String}") == [(True,)]


def test_a_map_dropped_in_the_folder_applies_without_a_restart(hub: RunningHub) -> None:
    folder: Path = hub.settings.data_dir / "terminology"
    (folder / "more.yaml").write_text(
        f"facility_id: {FACILITY}\nsource_system: lab-test\nversion: '7'\n"
        "maps:\n  - {local_code: NA5, target_code: 2951-2}\n", encoding="utf-8")
    wait_for(lambda: rows(hub, "SELECT 1 FROM hutong.current_concept_maps "
                               "WHERE facility_id = {f:String} AND local_code = 'NA5'"))
    sent: list[str] = []

    def translated() -> list[tuple[Any, ...]]:
        """A new result each second until one is translated: the workers follow the maps
        topic on their own, a moment after the hub has published the map."""
        sent.append(f"TRM02{len(sent)}")
        send(hub, oru(sent[-1], "NA5", "141", "mmol/L", "钠"))
        return [row for row in rows(hub, (
            "SELECT standard_code, map_version FROM hutong.lab_results "
            "WHERE facility_id = {f:String} AND test_code = 'NA5'")) if row[0]]

    code, version = wait_for(translated, timeout=30)[0]
    assert code == "2951-2" and "7" in version.split("+")
