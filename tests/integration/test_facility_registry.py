"""The facility registry on a real hub and a broker of its own (issue 10).

A facility added through the API sends its next message without a restart; a
retired one is refused; every change is checked (codes, another facility's key,
the version it was based on), audited with who made it, and on
``hutong.registry.facilities``. After a restart, changes made through the API stand
and an edit of the registry file applies. The CLI reads and changes the same
registry through the running hub.
"""

from __future__ import annotations

import asyncio
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

from .conftest import PSEUDONYM_KEY, RunningHub, broker_of_its_own, free_port

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


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with broker_of_its_own(tmp_path_factory.mktemp("registry-broker")) as started:
        yield started.bootstrap


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("registry-hub")


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
