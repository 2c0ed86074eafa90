"""The facility and practitioner registries on a real hub and a broker of its own (issue 10).

A facility added through the API sends its next message without a restart; a
retired one is refused; every change is checked (codes, another facility's key,
the version it was based on), audited with who made it, and on
``hutong.registry.facilities``. After a restart, changes made through the API stand
and an edit of the registry file applies. The CLI reads and changes the same
registry through the running hub.

The practitioner registry, seeded from a CSV file: results name their ordering
clinician by staff id or certificate number and are linked to the registry; an
unknown clinician's result is kept, marked unknown and listed for the registry's
keepers; once added through the API, the next result links; a retired one's are
marked retired. ID numbers are never listed, only their pseudonyms.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from connectors.facilities import FacilityRegistry, hash_api_key
from connectors.mllp.client import MLLPClient
from hutong.audit import AuditLog
from hutong.cli import app as cli
from hutong.config import Settings
from hutong.registry.facilities import FacilityFeed
from hutong.sender import ack_summary
from hutong.users import add_user

from .conftest import PSEUDONYM_KEY, RunningHub, broker_of_its_own, free_port, wait_for

pytestmark = pytest.mark.integration

ORU = ("MSH|^~\\&|LIS|{facility}|HUTONG|REGION|20261205093000||ORU^R01^ORU_R01|{control}|P|2.4"
       "|||||CHN|UNICODE UTF-8\rPID|1||R1^^^{facility}^MR||登记||19800101|F\r"
       "OBR|1|P1|F1|BCP^生化^L|||20261205090000\r"
       "OBX|1|NM|K^钾^L||4.2|mmol/L|3.5-5.5|N|||F\r")
REGISTRY = """facilities:
  - id: FILEHOSP
    name: {name}
    uscc: 12360000491015900T
    level: 二级甲等
    kind: 综合医院
    region_code: "620521"
    mllp_sources: [127.0.0.0/8]
{more}"""
NEW_KEY = hash_api_key("htk_new-hospital-key")
#: An ORU whose OBR-16 (ordering provider) is ``doctor``.
ORDERED = ORU.replace("|||20261205090000\r", "|||20261205090000|||||||||{doctor}^开单医生\r")
STAFF_ID_NUMBER = "11010519491231002X"
STAFF_CSV = ("facility_id,local_id,name,id_number,certificate_number,department,role,title\n"
             f"FILEHOSP,D100,王医生,{STAFF_ID_NUMBER},110620521000123,心内科,doctor,主治医师\n"
             "FILEHOSP,N7,李护士,,,心内科,nurse,\n")


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with broker_of_its_own(tmp_path_factory.mktemp("registry-broker")) as started:
        yield started.bootstrap


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("registry-hub")
    (path / "practitioners.csv").write_text(STAFF_CSV, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tokens(data_dir: Path) -> dict[str, str]:
    users = data_dir / "users.yaml"
    return {name: add_user(users, name, roles) for name, roles in (
        ("ops", ["admin"]), ("li.analyst", ["analyst"]), ("dr.wang", ["clinician"]))}


def start(data_dir: Path, broker: str, registry: str) -> RunningHub:
    (data_dir / "facilities.yaml").write_text(registry, encoding="utf-8")
    settings = Settings(data_dir=data_dir, kafka_bootstrap=broker, mllp_host="127.0.0.1",
                        mllp_port=free_port(), http_host="127.0.0.1", http_port=free_port(),
                        clickhouse_http_port=free_port(), pseudonym_key=PSEUDONYM_KEY)
    return RunningHub(settings, keep_registry=True).start()


@pytest.fixture(scope="module")
def hub(data_dir: Path, broker: str, tokens: dict[str, str]) -> Iterator[RunningHub]:
    running = start(data_dir, broker, REGISTRY.format(name="文件医院", more=""))
    yield running
    running.stop()


def send(hub: RunningHub, facility: str, control: str) -> tuple[str, str]:
    async def go() -> tuple[str, str]:
        async with MLLPClient("127.0.0.1", hub.settings.mllp_port) as client:
            summary = ack_summary(await client.send(
                ORU.format(facility=facility, control=control).encode()))
        return summary[0], summary[2]
    return asyncio.run(go())


def api(hub: RunningHub, token: str | None, method: str, path: str,
        body: dict[str, Any] | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.request(method, f"{hub.settings.api_url}/api/v1/facilities{path}", json=body,
                         headers=headers, timeout=30)


def on_topic(broker: str) -> dict[str, Any]:
    """What a new reader of hutong.registry.facilities finds: the latest record per id."""
    feed = FacilityFeed({"bootstrap.servers": broker}, FacilityRegistry())
    feed.start()
    try:
        assert feed.wait_ready(30)
        return dict(feed.records)
    finally:
        feed.stop()


def test_a_facility_added_through_the_api_sends_at_once_and_once_retired_is_refused(
        hub: RunningHub, broker: str, tokens: dict[str, str], data_dir: Path) -> None:
    ops, analyst, clinician = tokens["ops"], tokens["li.analyst"], tokens["dr.wang"]
    [listed] = api(hub, analyst, "GET", "").json()
    assert (listed["id"], listed["version"], listed["changed_by"], listed["region_code"]) == (
        "FILEHOSP", 1, "registry-file", "620521")
    assert send(hub, "NEWHOSP", "N-1")[0] == "AR"  # not registered yet

    new = {"id": "NEWHOSP", "name": "新区社区卫生服务中心", "kind": "社区卫生服务中心",
           "uscc": "91350203M0001QAY9B", "community": "FILEHOSP", "region_code": "620521",
           "mllp_sources": ["127.0.0.0/8"], "api_keys": [NEW_KEY]}
    assert api(hub, None, "POST", "", {"facility": new}).status_code == 401
    assert api(hub, clinician, "POST", "", {"facility": new}).status_code == 403
    assert api(hub, analyst, "POST", "", {"facility": new}).status_code == 403
    wrong = api(hub, ops, "POST", "", {"facility": {**new, "uscc": "9135020"}})
    assert wrong.status_code == 422 and "uscc" in wrong.json()["detail"]
    added = api(hub, ops, "POST", "", {"facility": new, "reason": "上线"})
    assert added.status_code == 202, added.text
    assert added.json()["version"] == 1 and added.json()["api_keys"] == 1  # a count, no hash
    assert any("pilot-era" in w for w in added.json()["warnings"])
    assert send(hub, "NEWHOSP", "N-2")[0] == "AA"  # no restart

    thief = api(hub, ops, "POST", "", {"facility": {"id": "THIEF", "api_keys": [NEW_KEY]}})
    assert thief.status_code == 409 and "API key" in thief.json()["detail"]
    assert api(hub, ops, "POST", "", {"facility": new}).status_code == 409  # registered
    stale = api(hub, ops, "PATCH", "/NEWHOSP", {"facility": {"level": "一级甲等"}, "version": 7})
    assert stale.status_code == 409 and "version 1" in stale.json()["detail"]
    updated = api(hub, ops, "PATCH", "/NEWHOSP", {"facility": {"level": "一级甲等"},
                                                  "version": 1})
    assert (updated.status_code, updated.json()["version"]) == (202, 2)

    retired = api(hub, ops, "POST", "/NEWHOSP/retire", {"reason": "并入FILEHOSP"})
    assert (retired.status_code, retired.json()["status"]) == (202, "retired")
    code, text = send(hub, "NEWHOSP", "N-3")
    assert code == "AR" and "retired" in text
    assert api(hub, ops, "POST", "/NEWHOSP/retire", {}).status_code == 409
    assert [f["id"] for f in api(hub, analyst, "GET", "?status=retired").json()] == ["NEWHOSP"]

    published = on_topic(broker)["NEWHOSP"]
    assert (published.version, published.changed_by, published.facility.status) == (
        3, "ops", "retired")
    actions = [(r["action"], r.get("facility_id"), r.get("acting_as"))
               for r in AuditLog(data_dir / "audit").records()
               if r["action"].startswith("facility.")]
    assert actions == [("facility.add", "NEWHOSP", "ops"), ("facility.update", "NEWHOSP", "ops"),
                       ("facility.retire", "NEWHOSP", "ops")]


def test_the_cli_lists_and_changes_the_registry_through_the_hub(
        hub: RunningHub, tokens: dict[str, str], tmp_path: Path) -> None:
    env = {"HUTONG_HTTP_PORT": str(hub.settings.http_port), "HUTONG_API_TOKEN": tokens["ops"],
           "HUTONG_DATA_DIR": str(tmp_path)}
    runner = CliRunner()
    added = runner.invoke(cli, ["facility", "add", "CLIHOSP", "--name", "命令行卫生院",
                                "--kind", "乡镇卫生院", "--mllp-source", "127.0.0.1",
                                "--reason", "onboarding"], env=env)
    assert added.exit_code == 0, added.output
    assert "CLIHOSP is at version 1" in added.output
    listed = runner.invoke(cli, ["facility", "list", "--format", "csv"], env=env)
    assert listed.exit_code == 0 and "CLIHOSP,命令行卫生院" in listed.output
    refused = runner.invoke(cli, ["facility", "update", "CLIHOSP", "--level", "四级"], env=env)
    assert refused.exit_code != 0 and "level must be one of" in str(refused.exception)
    assert send(hub, "CLIHOSP", "C-1")[0] == "AA"


def send_ordered(hub: RunningHub, control: str, doctor: str) -> tuple[Any, ...]:
    """Send a result ordered by ``doctor``; its row in lab_results once there:
    (practitioner_id, practitioner_status)."""
    async def go() -> str:
        async with MLLPClient("127.0.0.1", hub.settings.mllp_port) as client:
            return ack_summary(await client.send(ORDERED.format(
                facility="FILEHOSP", control=control, doctor=doctor).encode()))[0]
    assert asyncio.run(go()) == "AA"
    rows = wait_for(lambda: hub.query(
        "SELECT practitioner_id, practitioner_status FROM lab_results "
        "WHERE message_control_id = {c:String}", {"c": control}))
    assert len(rows) == 1
    return tuple(rows[0])


def linked_soon(hub: RunningHub, control: str, doctor: str, expected: tuple[Any, ...],
                within_s: float = 30) -> tuple[Any, ...]:
    """Results ordered by ``doctor``, one every half second, until one is linked as
    ``expected`` (the workers read a registry change within a second or so; a loaded
    machine takes longer): the last result's link."""
    deadline = time.monotonic() + within_s
    for attempt in itertools.count():
        latest = send_ordered(hub, f"{control}-{attempt}", doctor)
        if latest == expected or time.monotonic() > deadline:
            return latest
        time.sleep(0.5)
    raise AssertionError("unreachable")


def staff_api(hub: RunningHub, token: str, method: str, path: str = "",
              body: dict[str, Any] | None = None, **params: Any) -> httpx.Response:
    return httpx.request(method, f"{hub.settings.api_url}/api/v1/practitioners{path}",
                         json=body, params=params, timeout=30,
                         headers={"Authorization": f"Bearer {token}"})


def test_results_link_their_ordering_clinician_and_unknown_ones_are_kept_and_listed(
        hub: RunningHub, tokens: dict[str, str], data_dir: Path, tmp_path: Path) -> None:
    ops, analyst, clinician = tokens["ops"], tokens["li.analyst"], tokens["dr.wang"]
    listed = staff_api(hub, analyst, "GET").json()
    assert [(p["practitioner_id"], p["role"], p["changed_by"]) for p in listed] == [
        ("FILEHOSP|D100", "医师", "practitioner-file"),
        ("FILEHOSP|N7", "护士", "practitioner-file")]
    assert listed[0]["id_pseudonym"].startswith("ps_") and STAFF_ID_NUMBER not in str(listed)
    assert staff_api(hub, clinician, "GET").status_code == 403

    assert send_ordered(hub, "S-1", "D100") == ("FILEHOSP|D100", "known")
    assert send_ordered(hub, "S-2", "110620521000123") == ("FILEHOSP|D100", "known")  # cert.
    assert send_ordered(hub, "S-3", "D999") == (None, "unknown")  # kept, not dropped
    unknown = wait_for(lambda: staff_api(hub, analyst, "GET", "/unknown").json())
    assert [(u["facility_id"], u["local_id"], u["name"], u["role"], u["count"], u["registered"])
            for u in unknown] == [("FILEHOSP", "D999", None, "ordering", 1, False)]

    new = {"facility_id": "FILEHOSP", "local_id": "D999", "name": "赵医生", "role": "医师",
           "certificate_number": "110620521000999"}
    assert staff_api(hub, analyst, "POST", body={"practitioner": new}).status_code == 403
    bad = staff_api(hub, ops, "POST", body={"practitioner": {**new, "id_number": "12345"}})
    assert bad.status_code == 422 and "id_number" in bad.json()["detail"]
    assert "12345" not in bad.text
    nowhere = staff_api(hub, ops, "POST", body={"practitioner": {**new, "facility_id": "NOPE"}})
    assert nowhere.status_code == 422 and "facility registry" in nowhere.json()["detail"]
    added = staff_api(hub, ops, "POST", body={"practitioner": new, "reason": "新入职"})
    assert (added.status_code, added.json()["version"]) == (202, 1), added.text
    assert staff_api(hub, ops, "POST", body={"practitioner": new}).status_code == 409
    # the stream workers follow the topic: in force from their next read of it, no restart
    known = ("FILEHOSP|D999", "known")
    assert linked_soon(hub, "S-4", "D999", known) == known
    wait_for(lambda: not staff_api(hub, analyst, "GET", "/unknown").json())  # registered now

    stale = staff_api(hub, ops, "PATCH", "/FILEHOSP/D100",
                      {"practitioner": {"title": "副主任医师"}, "version": 9})
    assert stale.status_code == 409
    retired = staff_api(hub, ops, "POST", "/FILEHOSP/D100/retire", {"reason": "退休"})
    assert (retired.status_code, retired.json()["status"]) == (202, "retired")
    retired_link = ("FILEHOSP|D100", "retired")
    assert linked_soon(hub, "S-5", "D100", retired_link) == retired_link
    wait_for(lambda: hub.query(
        "SELECT status, version FROM current_practitioners WHERE practitioner_id = "
        "'FILEHOSP|D100'") == [("retired", 2)])

    actions = [(r["action"], r.get("practitioner_id")) for r in AuditLog(data_dir / "audit")
               .records() if r["action"].startswith("practitioner.")]
    assert actions == [("practitioner.add", "FILEHOSP|D999"),
                       ("practitioner.retire", "FILEHOSP|D100")]
    env = {"HUTONG_HTTP_PORT": str(hub.settings.http_port), "HUTONG_API_TOKEN": ops,
           "HUTONG_DATA_DIR": str(tmp_path)}
    shown = CliRunner().invoke(cli, ["practitioner", "list", "--status", "all", "--format",
                                     "csv"], env=env)
    assert shown.exit_code == 0 and "FILEHOSP|D999,赵医生,110620521000999" in shown.output


def test_after_a_restart_api_changes_stand_and_file_edits_apply(
        hub: RunningHub, broker: str, data_dir: Path) -> None:
    hub.stop()
    more = "  - id: FILE2\n    name: 第二家\n    mllp_sources: [127.0.0.0/8]\n"
    again = start(data_dir, broker, REGISTRY.format(name="文件医院（新名）", more=more))
    try:
        records = on_topic(broker)
        assert (records["FILEHOSP"].version, records["FILEHOSP"].facility.name) == (
            2, "文件医院（新名）")
        assert records["NEWHOSP"].facility.status == "retired"  # the API's change stands
        assert records["CLIHOSP"].facility.status == "active"
        assert send(again, "FILE2", "F2-1")[0] == "AA"
        assert send(again, "NEWHOSP", "N-4")[0] == "AR"
    finally:
        again.stop()
