"""Intake on real parts: a registered-facilities hub with MLLP, MLLP over TLS, HTTP and batch.

One hub for the module, its registry closed (no open intake), TLS certificates
from a throwaway CA (trustme), Tansu and chDB as in production.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from connectors.facilities import hash_api_key
from connectors.mllp.client import MLLPClient
from hutong.audit import verify
from hutong.config import Settings
from hutong.errors import HutongError
from hutong.sender import ack_summary

from .conftest import RunningHub, free_port, wait_for

pytestmark = pytest.mark.integration

KEY = "htk_integration-key-of-ithosp"
OTHER_KEY = "htk_integration-key-of-tlshosp"
CDA_FIXTURES = Path(__file__).parents[1] / "fixtures" / "cda"

MSH = ("MSH|^~\\&|{app}|{fac}|HUTONG|REGION|20261122093000||{type}|{cid}|P|{ver}|||{acks}|"
       "|UNICODE UTF-8\r")
PID = "PID|1||MRN{n}^^^{fac}^MR~11010519491231002X^^^^SFZH||测试{n}||19491231|M\r"


def msh(cid: str, type_: str, *, fac: str = "ITHOSP", app: str = "HIS", ver: str = "2.4",
        acks: str = "|") -> str:
    return MSH.format(app=app, fac=fac, type=type_, cid=cid, ver=ver, acks=acks)


def oru(cid: str, *, fac: str = "ITHOSP", acks: str = "|", value: str = "4.1") -> bytes:
    return (msh(cid, "ORU^R01^ORU_R01", fac=fac, app="LIS", acks=acks) + PID.format(n=1, fac=fac)
            + "OBR|1|P1|F1|BCP^生化^L|||20261122090000\r"
            + f"OBX|1|NM|K^钾^L||{value}|mmol/L|3.5-5.5|N|||F\r").encode()


#: One message of every type the adapters take, and the table each must reach.
MESSAGE_TYPES: dict[str, tuple[str, str]] = {
    "adt-dg1": ("diagnoses", msh("T-ADT", "ADT^A01^ADT_A01") + "EVN|A01|20261122090000\r"
                + PID.format(n=2, fac="ITHOSP") + "PV1|1|I|0301^312^03||||||||||||||||ZY01\r"
                + "DG1|1||E11.900^2型糖尿病^ICD10|||A\rDG1|2||I10.x00^高血压^ICD10|||A\r"),
    "orm": ("orders", msh("T-ORM", "ORM^O01^ORM_O01") + PID.format(n=3, fac="ITHOSP")
            + "ORC|NW|ORD1||||||||||D01^王医生\rOBR|1|ORD1||CT001^胸部CT平扫^L\r"),
    "oml": ("orders", msh("T-OML", "OML^O21^OML_O21", ver="2.5.1") + PID.format(n=4, fac="ITHOSP")
            + "ORC|NW|ORD2\rOBR|1|ORD2||BCP^生化^L\r"),
    "rde": ("medications", msh("T-RDE", "RDE^O11^RDE_O11") + PID.format(n=5, fac="ITHOSP")
            + "ORC|NW|RX1||||||||||D01^王医生\r"
            + "RXE|^BID^D7|AMX^阿莫西林胶囊^L|0.5||g|胶囊\rRXR|PO^口服\r"),
    "rds": ("medications", msh("T-RDS", "RDS^O13^RDS_O13", ver="2.5.1")
            + PID.format(n=6, fac="ITHOSP") + "ORC|RE|RX2\r"
            + "RXD|1|AMX^阿莫西林胶囊^L|20261122100000|24|粒\r"),
    "pacs-oru": ("imaging_reports", msh("T-PACS", "ORU^R01^ORU_R01", app="PACS")
                 + PID.format(n=7, fac="ITHOSP")
                 + "OBR|1|ACC1|ACC1|CT001^胸部CT平扫^L|||20261122083000||||||||||||ACC1||||"
                   "20261122090000||CT|F\r"
                 + "OBX|1|TX|&GDT^检查所见||双肺纹理清晰。||||||F\r"
                 + "OBX|2|TX|&IMP^诊断意见||胸部CT平扫未见异常。||||||F\r"),
    "mdm": ("imaging_reports", msh("T-MDM", "MDM^T02^MDM_T02", app="RIS", ver="2.5.1")
            + "EVN|T02|20261122090000\r" + PID.format(n=8, fac="ITHOSP")
            + "TXA|1|RAD|TX|20261122090000||||||R01^张医生||||DOC1|||AU\r"
            + "OBX|1|TX|&IMP^诊断意见||未见异常||||||F\r"),
}


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, hub_settings: Callable[..., Settings],
          ca: trustme.CA) -> Iterator[RunningHub]:
    root = tmp_path_factory.mktemp("intake")
    server = ca.issue_cert("127.0.0.1", "localhost")
    server.private_key_and_cert_chain_pem.write_to_path(str(root / "server.pem"))
    ca.cert_pem.write_to_path(str(root / "ca.pem"))
    (root / "facilities.yaml").write_text(f"""
facilities:
  - id: ITHOSP
    name: 集成测试医院
    mllp_sources: [127.0.0.0/8]
    tls_names: [his.ithosp.example]
    api_keys: [{hash_api_key(KEY)}]
  - id: TLSHOSP
    api_keys: [{hash_api_key(OTHER_KEY)}]
""", encoding="utf-8")
    settings = hub_settings(
        root / "data", intake_open=False, facilities_file=root / "facilities.yaml",
        mllps_port=free_port(), tls_cert_file=root / "server.pem",
        tls_key_file=root / "server.pem", tls_client_ca_file=root / "ca.pem",
        mllp_frame_timeout_s=2.0, batch_poll_s=0.2, mllp_max_connections=20)
    running = RunningHub(settings).start()
    yield running
    running.stop()


def client_tls(ca: trustme.CA, *identities: str, signer: trustme.CA | None = None
               ) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    if identities:
        (signer or ca).issue_cert(*identities, common_name=identities[0]).configure_cert(context)
    return context


def exchange(port: int, *messages: bytes, tls: ssl.SSLContext | None = None
             ) -> list[list[tuple[str, str, str]]]:
    """Every ACK of each message, as (MSA-1, MSA-2, text), over one connection."""
    async def go() -> list[list[tuple[str, str, str]]]:
        async with MLLPClient("127.0.0.1", port, tls=tls, timeout=20) as client:
            return [[ack_summary(a) for a in await client.exchange(m)] for m in messages]
    return asyncio.run(go())


def codes(acks: list[tuple[str, str, str]]) -> list[str]:
    return [code for code, _, _ in acks]


def audit(stack: RunningHub) -> list[dict[str, Any]]:
    assert stack.hub.audit is not None
    return list(stack.hub.audit.records())


def rows(stack: RunningHub, sql: str) -> Any:
    return wait_for(lambda: stack.query(sql))


# --- plain MLLP and the registry -------------------------------------------------------

def test_registered_facility_from_its_address_is_accepted(stack: RunningHub) -> None:
    [acks] = exchange(stack.settings.mllp_port, oru("IT-0001"))
    assert codes(acks) == ["AA"]


def test_unregistered_facility_gets_ar_an_audit_record_and_nothing_stored(
        stack: RunningHub) -> None:
    [acks] = exchange(stack.settings.mllp_port, oru("IT-0002", fac="NOSUCH"))
    assert codes(acks) == ["AR"] and "not registered" in acks[0][2]
    assert any(e["action"] == "intake.refused" and e["facility"] == "NOSUCH"
               for e in audit(stack))
    exchange(stack.settings.mllp_port, oru("IT-0003"))  # a later message has landed ...
    rows(stack, "SELECT 1 FROM hutong.lab_results WHERE message_control_id = 'IT-0003'")
    assert stack.query("SELECT count() FROM hutong.lab_results WHERE facility_id = 'NOSUCH'"
                       ) == [(0,)]  # ... and nothing of the refused one
    assert stack.query("SELECT count() FROM hutong.dead_letters WHERE facility_id = 'NOSUCH'"
                       ) == [(0,)]


def test_facility_allowed_only_over_tls_is_refused_on_plain_mllp(stack: RunningHub) -> None:
    [acks] = exchange(stack.settings.mllp_port, oru("IT-0004", fac="TLSHOSP"))
    assert codes(acks) == ["AR"] and "TLS" in acks[0][2]


# --- acknowledgement modes and resends ---------------------------------------------------

def test_enhanced_mode_commit_then_application_ack(stack: RunningHub) -> None:
    [accepted, broken, commit_only] = exchange(
        stack.settings.mllp_port, oru("IT-0101", acks="AL|AL"),
        oru("IT-0102", acks="AL|AL", value="high"), oru("IT-0103", acks="AL|NE"))
    assert [(c, cid) for c, cid, _ in accepted] == [("CA", "IT-0101"), ("AA", "IT-0101")]
    assert codes(broken) == ["CA", "AE"] and "OBX[1]-5" in broken[1][2]
    assert codes(commit_only) == ["CA"]


def test_a_resend_is_acked_again_and_stored_once_and_reuse_is_refused(
        stack: RunningHub) -> None:
    first, resend, reused = exchange(stack.settings.mllp_port, oru("IT-0201"), oru("IT-0201"),
                                     oru("IT-0201", value="5.9"))
    assert codes(first) == codes(resend) == ["AA"]
    assert codes(reused) == ["AR"] and "already used" in reused[0][2]
    rows(stack, "SELECT 1 FROM hutong.dead_letters WHERE error_code = '205'")
    rows(stack, "SELECT 1 FROM hutong.lab_results WHERE message_control_id = 'IT-0201'")
    assert stack.query("SELECT count(), any(value) FROM hutong.lab_results FINAL "
                       "WHERE message_control_id = 'IT-0201'") == [(1, "4.1")]


# --- MLLP over TLS -----------------------------------------------------------------------

def test_tls_client_certificate_names_the_facility(stack: RunningHub, ca: trustme.CA) -> None:
    tls = client_tls(ca, "his.ithosp.example")
    assert stack.settings.mllps_port is not None
    [ok, other] = exchange(stack.settings.mllps_port, oru("IT-0301"),
                           oru("IT-0302", fac="TLSHOSP"), tls=tls)
    assert codes(ok) == ["AA"]
    assert codes(other) == ["AR"] and "authenticated as 'ITHOSP'" in other[0][2]
    [by_default_name] = exchange(stack.settings.mllps_port, oru("IT-0303", fac="TLSHOSP"),
                                 tls=client_tls(ca, "TLSHOSP"))
    assert codes(by_default_name) == ["AA"]


def test_tls_certificate_of_no_registered_facility_gets_ar(stack: RunningHub,
                                                           ca: trustme.CA) -> None:
    assert stack.settings.mllps_port is not None
    [acks] = exchange(stack.settings.mllps_port, oru("IT-0304"),
                      tls=client_tls(ca, "stranger.example"))
    assert codes(acks) == ["AR"] and "no registered facility" in acks[0][2]


@pytest.mark.parametrize("case", ["missing", "wrong CA"])
def test_tls_without_a_valid_client_certificate_is_turned_away_and_audited(
        stack: RunningHub, ca: trustme.CA, case: str) -> None:
    assert stack.settings.mllps_port is not None
    before = len(audit(stack))
    tls = client_tls(ca) if case == "missing" else client_tls(
        ca, "his.ithosp.example", signer=trustme.CA())
    with pytest.raises((HutongError, ssl.SSLError, ConnectionError)):
        exchange(stack.settings.mllps_port, oru("IT-0305"), tls=tls)
    entries = wait_for(lambda: audit(stack)[before:])
    assert entries[0]["action"] == "connection.refused"
    assert "TLS handshake failed" in entries[0]["reason"]
    [acks] = exchange(stack.settings.mllp_port, oru("IT-0306"))  # plain MLLP unaffected
    assert codes(acks) == ["AA"]
    assert stack.hub.audit is not None and verify(stack.hub.audit.directory) >= 1


# --- every message type ------------------------------------------------------------------

@pytest.mark.parametrize("kind", list(MESSAGE_TYPES))
def test_every_message_type_is_acked_and_lands_in_its_table(stack: RunningHub,
                                                           kind: str) -> None:
    table, text = MESSAGE_TYPES[kind]
    [acks] = exchange(stack.settings.mllp_port, text.encode())
    assert codes(acks) == ["AA"], acks
    control_id = text.split("|")[9]
    expected = 2 if kind == "adt-dg1" else 1  # the events of one message may land apart
    found = rows(stack, f"SELECT count() FROM hutong.{table} FINAL "  # noqa: S608
                        f"WHERE message_control_id = '{control_id}' "
                        f"HAVING count() >= {expected}")
    assert found[0][0] == expected


# --- HTTP ingest -------------------------------------------------------------------------

def api(stack: RunningHub, kind: str, body: bytes | str, key: str | None = KEY,
        **params: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(f"{stack.settings.api_url}/api/v1/ingest/{kind}", content=body,
                      headers=headers, params=params, timeout=30)


def test_http_hl7v2_needs_the_facility_key(stack: RunningHub) -> None:
    answer = api(stack, "hl7v2", oru("IT-0401"))
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["outcome"] == "AA" and len(body["event_ids"]) == 1 and "MSA|AA|IT-0401" in body[
        "ack"]
    assert api(stack, "hl7v2", oru("IT-0401")).json()["duplicate"] is True
    assert api(stack, "hl7v2", oru("IT-0402"), key=None).status_code == 401
    assert api(stack, "hl7v2", oru("IT-0402"), key="htk_wrong").status_code == 401
    mismatch = api(stack, "hl7v2", oru("IT-0402", fac="TLSHOSP"))
    assert mismatch.status_code == 403 and "authenticated as" in mismatch.json()["reason"]
    bad = api(stack, "hl7v2", oru("IT-0403", value="high"))
    assert bad.status_code == 422 and bad.json()["location"] == "OBX[1]-5"
    too_big = api(stack, "hl7v2", b"MSH|" + b"x" * (stack.settings.http_max_body_bytes + 1))
    assert too_big.status_code == 413
    assert api(stack, "hl7v2", b"").status_code == 400
    kept = [e for e in audit(stack) if e.get("facility") == "ITHOSP" and "status" in e]
    assert [e["status"] for e in kept[-2:]] == [413, 400]


def test_http_json_events_land_in_the_warehouse(stack: RunningHub) -> None:
    event = {"event_type": "lab-result", "patient": {"source_patient_id": "J1", "sex": "2",
                                                     "birth_date": "1980-01-01"},
             "occurred_at": "2026-11-22T09:30:00+08:00", "set_id": 1, "test_code": "GLU",
             "test_name": "葡萄糖", "value_type": "NM", "value": "5.6", "value_numeric": 5.6,
             "unit": "mmol/L"}
    answer = api(stack, "json", json.dumps({"message_id": "IT-J-0001", "events": [event]}))
    assert answer.status_code == 202, answer.text
    rows(stack, "SELECT 1 FROM hutong.lab_results WHERE message_control_id = 'IT-J-0001'")
    wrong = api(stack, "json", json.dumps({"message_id": "IT-J-0002", "events": [
        {**event, "occurred_at": "2026-11-22T09:30:00"}]}))
    assert wrong.status_code == 422 and wrong.json()["location"] == "events[0].occurred_at"
    assert api(stack, "json", "not json").status_code == 400


def test_http_cda_document_lands_with_its_metadata(stack: RunningHub) -> None:
    document = (CDA_FIXTURES / "C0002-outpatient.xml").read_bytes()
    answer = api(stack, "cda", document)
    assert answer.status_code == 202, answer.text
    found = rows(stack, "SELECT document_type_code, content_sha256 FROM hutong.documents "
                        "WHERE facility_id = 'ITHOSP'")
    assert found[0][0] == "C0002" and len(found[0][1]) == 64
    hostile = api(stack, "cda", b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM '
                                b'"file:///etc/passwd">]><ClinicalDocument>&x;</ClinicalDocument>')
    assert hostile.status_code == 400 and "passwd" not in hostile.text


def test_openapi_lists_the_ingest_routes(stack: RunningHub) -> None:
    paths = httpx.get(f"{stack.settings.api_url}/openapi.json").json()["paths"]
    assert {"/api/v1/ingest/hl7v2", "/api/v1/ingest/cda", "/api/v1/ingest/json",
            "/api/v1/ingest/batch"} <= set(paths)


# --- batch files -------------------------------------------------------------------------

def batch_file(prefix: str, count: int, broken: int | None = None) -> bytes:
    messages = [oru(f"{prefix}{n:03d}", value="high" if n == broken else "4.1")
                for n in range(count)]
    return (b"FHS|^~\\&|LIS|ITHOSP\rBHS|^~\\&|LIS|ITHOSP\r" + b"".join(messages)
            + f"BTS|{count}\rFTS|1\r".encode())


def test_a_dropped_batch_file_is_processed_reported_and_moved(stack: RunningHub) -> None:
    root = stack.settings.data_dir / "batch"
    (root / "inbox" / "ITHOSP").mkdir(parents=True, exist_ok=True)
    (root / "inbox" / "ITHOSP" / "lab.hl7").write_bytes(batch_file("IT-B", 25, broken=3))
    report_path = wait_for(lambda: next((root / "reports").glob("*lab.hl7.report.json"), None))
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert report["messages"] == 25 and report["outcomes"] == {"AA": 24, "AE": 1}
    assert report["problems"][0]["location"] == "OBX[1]-5" and report["complete"]
    assert list((root / "done").glob("*lab.hl7")) and not list((root / "inbox").rglob("*.hl7"))


def test_an_uploaded_batch_file_gets_its_report_back(stack: RunningHub) -> None:
    answer = api(stack, "batch", batch_file("IT-U", 5), name="upload.hl7")
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["outcomes"] == {"AA": 5} and report["notes"] == []
    again = api(stack, "batch", batch_file("IT-U", 5)).json()
    assert again["resends"] == 5


# --- connections -------------------------------------------------------------------------

def test_connections_over_the_limit_are_closed_and_others_keep_flowing(
        stack: RunningHub) -> None:
    async def go() -> list[str]:
        held = [await asyncio.open_connection("127.0.0.1", stack.settings.mllp_port)
                for _ in range(stack.settings.mllp_max_connections)]
        await asyncio.sleep(0.2)
        reader, writer = await asyncio.open_connection("127.0.0.1", stack.settings.mllp_port)
        closed = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        for _, w in held:
            w.close()
        await asyncio.sleep(0.3)
        return [closed.decode()]

    assert asyncio.run(go()) == [""]
    time.sleep(0.2)
    [acks] = exchange(stack.settings.mllp_port, oru("IT-0501"))
    assert codes(acks) == ["AA"]
