"""Document retrieval over HTTP: roles, sensitive documents, de-identification, the audit.

The API runs under uvicorn on a free port, in a thread, on a SQLite store in a
temporary directory; requests go over HTTP (httpx), and the CLI tests use
``hutong documents`` against it as a user would.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from typer.testing import CliRunner

from connectors.facilities import hash_api_key
from hutong.api.app import create_api
from hutong.cli import app as cli
from hutong.metrics import Metrics
from hutong.users import User, Users
from sinks.docstore.model import CDA_MEDIA_TYPE
from sinks.docstore.store import DocumentStore
from tests.docstore_support import PATIENT_NAME, make_document, store_on

from .conftest import free_port

pytestmark = pytest.mark.integration

PLAIN = "2.16.156.10011.1.1^OUT-1"
SENSITIVE = "2.16.156.10011.1.1^HIV-1"
TOKENS = {"dr.wang": "tok-clinician", "dr.li": "tok-sensitive", "li.analyst": "tok-analyst",
          "ops": "tok-admin"}
ROLES = {"dr.wang": ["clinician"], "dr.li": ["clinician", "sensitive"],
         "li.analyst": ["analyst"], "ops": ["admin"]}


def users() -> Users:
    return Users([User(name=name, roles=ROLES[name], tokens=[hash_api_key(token)])  # type: ignore[arg-type]
                  for name, token in TOKENS.items()])


def as_(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name]}"}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DocumentStore]:
    with store_on("sqlite", tmp_path) as opened:
        opened.put(make_document(PLAIN))
        opened.put(make_document(SENSITIVE, body="HIV抗体阳性", type_code="C0010",
                                 type_name="传染病报告", title="传染病报告卡",
                                 set_id="2.16.156.10011.1.1^HIV-SET",
                                 sensitivity=frozenset({"infectious-disease"})))
        yield opened


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@contextlib.contextmanager
def serve(api: FastAPI) -> Iterator[str]:
    """``api`` under uvicorn on a free port; its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(api, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the API did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def client(store: DocumentStore, metrics: Metrics) -> Iterator[httpx.Client]:
    with serve(create_api(metrics, warehouse=None, users=users(), documents=store)) as url, \
            httpx.Client(base_url=url) as http:
        yield http


def audit(store: DocumentStore) -> list[tuple[Any, ...]]:
    return [(r.principal, r.action, r.empi_id, r.document_id, r.purpose, r.outcome)
            for r in store.access_records()]


def test_anonymous_callers_are_turned_away_unrecorded(client: httpx.Client,
                                                      store: DocumentStore) -> None:
    assert client.get("/api/v1/patients/E-42/documents").status_code == 401
    assert client.get(f"/api/v1/documents/{PLAIN}").status_code == 401
    bad = {"Authorization": "Bearer nope"}
    assert client.get(f"/api/v1/documents/{PLAIN}", headers=bad).status_code == 401
    assert audit(store) == []


@pytest.mark.parametrize("name", ["li.analyst", "ops"])
def test_analysts_and_admins_see_no_documents_and_the_refusal_is_audited(
        client: httpx.Client, store: DocumentStore, name: str) -> None:
    assert client.get("/api/v1/patients/E-42/documents", headers=as_(name)).status_code == 403
    assert client.get(f"/api/v1/documents/{PLAIN}", headers=as_(name)).status_code == 403
    assert audit(store) == [(name, "index", "E-42", None, "treatment", "refused"),
                            (name, "read", "E-42", PLAIN, "treatment", "refused")]


def test_a_clinician_reads_the_index_without_sensitive_details(
        client: httpx.Client, store: DocumentStore, metrics: Metrics) -> None:
    answer = client.get("/api/v1/patients/E-42/documents", headers=as_("dr.wang"))
    assert answer.status_code == 200
    entries = {e["document_id"]: e for e in answer.json()["documents"]}
    assert entries[SENSITIVE] == {"document_id": SENSITIVE, "type_code": "C0010",
                                  "type_name": "传染病报告",
                                  "effective_time": "2026-03-01T08:30:00+00:00",
                                  "facility_id": "F001", "sensitive": True}
    plain = entries[PLAIN]
    assert plain["title"] == "门诊病历" and plain["sensitive"] is False
    assert "content" not in plain and plain["content_sha256"]
    assert audit(store) == [("dr.wang", "index", "E-42", None, "treatment", "allowed")]
    assert metrics.registry.get_sample_value(
        "hutong_document_access_total", {"action": "index", "outcome": "allowed"}) == 1


def test_the_sensitive_role_sees_the_whole_index_entry(client: httpx.Client) -> None:
    answer = client.get("/api/v1/patients/E-42/documents", headers=as_("dr.li")).json()
    entries = {e["document_id"]: e for e in answer["documents"]}
    assert entries[SENSITIVE]["title"] == "传染病报告卡"
    assert entries[SENSITIVE]["sensitivity"] == ["infectious-disease"]


def test_index_filters(client: httpx.Client, store: DocumentStore) -> None:
    def ids(**params: Any) -> list[str]:
        answer = client.get("/api/v1/patients/E-42/documents", headers=as_("dr.wang"),
                            params=params)
        assert answer.status_code == 200, answer.text
        return sorted(e["document_id"] for e in answer.json()["documents"])

    assert ids(type_code="C0010") == [SENSITIVE]
    assert ids(facility="F999") == []
    # 2026-03-01T16:30 in Shanghai is 08:30 UTC: a time without an offset is Shanghai time
    assert ids(**{"from": "2026-03-01T16:30:00"}) == [SENSITIVE, PLAIN]
    assert ids(**{"from": "2026-03-01T16:30:01"}) == []
    assert ids(to="2026-03-01T08:30:00Z") == []
    assert len(ids(limit=1)) == 1
    store.put(make_document("2.16.156.10011.1.1^OUT-2", body="v2", version_number=2,
                            replaces_document_id=PLAIN))
    assert PLAIN not in ids()
    assert PLAIN in ids(include_replaced="true")


def test_a_clinician_reads_a_document_as_json_or_cda(client: httpx.Client,
                                                     store: DocumentStore) -> None:
    stored = store.get(PLAIN)
    assert stored is not None and stored.content is not None
    answer = client.get(f"/api/v1/documents/{PLAIN}", headers=as_("dr.wang"))
    assert answer.status_code == 200
    body = answer.json()
    assert body["content"] == stored.content.decode() and body["deidentified"] is False
    assert body["empi_id"] == "E-42" and answer.headers["cache-control"] == "no-store"
    by_accept = client.get(f"/api/v1/documents/{PLAIN}",
                           headers=as_("dr.wang") | {"Accept": CDA_MEDIA_TYPE})
    assert by_accept.headers["content-type"].startswith(CDA_MEDIA_TYPE)
    assert by_accept.content == stored.content
    by_param = client.get(f"/api/v1/documents/{PLAIN}?format=cda", headers=as_("dr.wang"))
    assert by_param.content == stored.content
    assert [r[-1] for r in audit(store)] == ["allowed"] * 3


def test_a_sensitive_document_needs_the_sensitive_role(client: httpx.Client,
                                                       store: DocumentStore) -> None:
    refused = client.get(f"/api/v1/documents/{SENSITIVE}", headers=as_("dr.wang"))
    assert refused.status_code == 403 and "deidentified=true" in refused.json()["detail"]
    allowed = client.get(f"/api/v1/documents/{SENSITIVE}?format=cda", headers=as_("dr.li"))
    assert allowed.status_code == 200 and PATIENT_NAME.encode() in allowed.content
    assert audit(store) == [
        ("dr.wang", "read", "E-42", SENSITIVE, "treatment", "refused"),
        ("dr.li", "read", "E-42", SENSITIVE, "treatment", "allowed")]


def test_a_clinician_without_the_role_gets_it_deidentified(client: httpx.Client,
                                                           store: DocumentStore) -> None:
    answer = client.get(f"/api/v1/documents/{SENSITIVE}",
                        params={"deidentified": "true", "format": "cda"},
                        headers=as_("dr.wang"))
    assert answer.status_code == 200
    assert answer.headers["x-hutong-deidentified"] == "true"
    assert PATIENT_NAME.encode() not in answer.content
    as_json = client.get(f"/api/v1/documents/{SENSITIVE}?deidentified=true",
                         headers=as_("dr.wang")).json()
    assert as_json["deidentified"] is True and PATIENT_NAME not in as_json["content"]
    assert "empi_id" not in as_json and "visit_number" not in as_json
    assert [r[-1] for r in audit(store)] == ["deidentified", "deidentified"]


def test_a_research_index_leaves_out_what_ties_it_to_the_patient(client: httpx.Client) -> None:
    answer = client.get("/api/v1/patients/E-42/documents",
                        params={"purpose": "research-deidentified"}, headers=as_("dr.li"))
    assert answer.status_code == 200
    body = answer.json()
    assert "empi_id" not in body and body["documents"]
    for entry in body["documents"]:
        assert "empi_id" not in entry and "visit_number" not in entry


def test_a_withdrawn_document_leaves_the_index_and_is_read_marked(
        client: httpx.Client, store: DocumentStore) -> None:
    with store.writing() as writer:
        writer.withdraw(PLAIN)

    def ids(**params: Any) -> list[str]:
        answer = client.get("/api/v1/patients/E-42/documents", headers=as_("dr.wang"),
                            params=params)
        return [e["document_id"] for e in answer.json()["documents"]]
    assert PLAIN not in ids()
    assert PLAIN in ids(include_withdrawn="true")
    body = client.get(f"/api/v1/documents/{PLAIN}", headers=as_("dr.wang")).json()
    assert body["withdrawn_at"] and body["withdrawn"] is True
    cda = client.get(f"/api/v1/documents/{PLAIN}?format=cda", headers=as_("dr.wang"))
    assert cda.status_code == 200 and cda.headers["x-hutong-withdrawn"] == "true"
    other = client.get(f"/api/v1/documents/{SENSITIVE}?format=cda", headers=as_("dr.li"))
    assert other.headers["x-hutong-withdrawn"] == "false"


def test_the_purpose_of_use_is_recorded_and_checked(client: httpx.Client,
                                                    store: DocumentStore) -> None:
    headed = client.get(f"/api/v1/documents/{PLAIN}",
                        headers=as_("dr.wang") | {"X-Purpose-Of-Use": "emergency"})
    assert headed.status_code == 200
    research = client.get(f"/api/v1/documents/{PLAIN}?purpose=research-deidentified",
                          headers=as_("dr.wang")).json()
    assert research["deidentified"] is True and PATIENT_NAME not in research["content"]
    wrong = client.get(f"/api/v1/documents/{PLAIN}?purpose=curiosity",
                       headers=as_("dr.wang"))
    assert wrong.status_code == 400
    assert [(r[4], r[5]) for r in audit(store)] == [
        ("emergency", "allowed"), ("research-deidentified", "deidentified"),
        ("invalid", "bad-purpose")]


def test_an_unknown_document_is_404_and_audited(client: httpx.Client,
                                                store: DocumentStore) -> None:
    assert client.get("/api/v1/documents/1.2.3^NONE", headers=as_("dr.wang")).status_code == 404
    assert audit(store) == [("dr.wang", "read", None, "1.2.3^NONE", "treatment", "not-found")]


def test_every_audit_record_says_who_whose_what_when_why_and_where(
        client: httpx.Client, store: DocumentStore) -> None:
    client.get(f"/api/v1/documents/{PLAIN}", headers=as_("dr.li"))
    [record] = store.access_records()
    assert record.principal == "dr.li" and record.roles == frozenset({"clinician", "sensitive"})
    assert (record.empi_id, record.document_id, record.action) == ("E-42", PLAIN, "read")
    assert record.purpose == "treatment" and record.outcome == "allowed"
    assert record.at is not None and record.client_address == "127.0.0.1"


def test_without_a_store_the_routes_say_so() -> None:
    with serve(create_api(Metrics(), warehouse=None, users=users())) as url:
        answer = httpx.get(f"{url}/api/v1/patients/E-42/documents", headers=as_("dr.wang"))
    assert answer.status_code == 503


# --- the CLI, through a running API ------------------------------------------------------


@pytest.fixture
def serving(store: DocumentStore, tmp_path: Path) -> Iterator[dict[str, str]]:
    token_file = tmp_path / "token"
    token_file.write_text(TOKENS["dr.wang"] + "\n")
    with serve(create_api(Metrics(), warehouse=None, users=users(), documents=store)) as url:
        yield {"HUTONG_HTTP_PORT": url.rsplit(":", 1)[1], "HUTONG_HTTP_HOST": "127.0.0.1",
               "HUTONG_DATA_DIR": str(tmp_path / "var"), "token_file": str(token_file)}


def test_cli_lists_and_shows_documents(serving: dict[str, str], store: DocumentStore,
                                       tmp_path: Path) -> None:
    token_file = serving.pop("token_file")
    runner = CliRunner()
    listed = runner.invoke(cli, ["documents", "list", "E-42", "--format", "json",
                                 "--token-file", token_file], env=serving)
    assert listed.exit_code == 0, listed.output
    rows = {row["document_id"]: row for row in json.loads(listed.stdout)}
    assert rows[SENSITIVE]["title"] is None and rows[SENSITIVE]["sensitive"] is True
    shown = runner.invoke(cli, ["documents", "show", PLAIN, "--token-file", token_file],
                          env=serving)
    assert shown.exit_code == 0, shown.output
    assert '"document_id": "2.16.156.10011.1.1^OUT-1"' in shown.stdout
    assert PATIENT_NAME in shown.stdout
    out = tmp_path / "doc.xml"
    saved = runner.invoke(cli, ["documents", "show", SENSITIVE, "--deidentified", "-o",
                                str(out), "--token-file", token_file], env=serving)
    assert saved.exit_code == 0, saved.output
    assert out.read_bytes().startswith(b"<?xml") and PATIENT_NAME.encode() not in out.read_bytes()
    refused = runner.invoke(cli, ["documents", "show", SENSITIVE, "--cda", "--token-file",
                                  token_file], env=serving)
    assert refused.exit_code != 0
    assert [r[-1] for r in audit(store)] == ["allowed", "allowed", "deidentified", "refused"]


def test_cli_adds_a_user_whose_token_works(tmp_path: Path, store: DocumentStore) -> None:
    env = {"HUTONG_DATA_DIR": str(tmp_path / "var")}
    added = CliRunner().invoke(cli, ["users", "add", "dr.zhao", "--role", "clinician",
                                     "--role", "sensitive"], env=env)
    assert added.exit_code == 0, added.output
    token = added.stdout.strip().splitlines()[-1]
    loaded = Users.load(tmp_path / "var" / "users.yaml")
    principal = loaded.authenticate(token)
    assert principal is not None and principal.roles == frozenset({"clinician", "sensitive"})
    assert token not in (tmp_path / "var" / "users.yaml").read_text()
    with serve(create_api(Metrics(), warehouse=None, users=loaded, documents=store)) as url:
        answer = httpx.get(f"{url}/api/v1/documents/{SENSITIVE}",
                           headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    wrong = CliRunner().invoke(cli, ["users", "add", "x", "--role", "superuser"], env=env)
    assert wrong.exit_code != 0

