"""Every route of the hub's two HTTP apps, every kind of caller, and the admin audit trail.

The routes are enumerated from the apps themselves: each is either in the public
allowlist below, or in the table of who may call it. A new route in neither fails
`test_every_route_is_public_or_names_its_callers`; every protected route is then
called anonymously (401), by each wrong kind of caller (403, or 401 for a credential
of the other kind: a user token at the ingest door, a facility key at a user's
route) and by each right one (neither). The API runs under uvicorn on a free port
over a real chDB warehouse and a SQLite document store; Kafka is a recording stub, so
what passes the role check really runs.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastapi.routing
import httpx
import pytest
from fastapi import FastAPI

from connectors.facilities import Facility, FacilityRegistry, hash_api_key
from hutong.api.app import create_api
from hutong.api.clickhouse_http import create_clickhouse_http
from hutong.audit import AuditLog, verify
from hutong.metrics import Metrics
from hutong.ratelimit import KeyedLimiter
from hutong.registry.facilities import FacilityFeed, FacilityRecord
from hutong.registry.practitioners import Practitioner, PractitionerFeed, PractitionerRecord
from producers.intake import Intake
from producers.kafka import OutRecord
from sinks.docstore.store import DocumentStore
from sinks.warehouse import Warehouse, migrate, open_warehouse
from tests.docstore_support import store_on

from .test_documents_api import TOKENS, as_, serve, users

pytestmark = pytest.mark.integration

FACILITY_KEY = "htk_route-test-facility-key"
PATIENT_TEXT = "患者张三身份证11010519491231002X"

#: Routes anyone may call, and why that is safe.
PUBLIC = {
    ("GET", "/healthz"): "component states only",
    ("GET", "/metrics"): "counters by facility, type and outcome; no patient data",
    ("GET", "/schemas/ids/{schema_id}"): "schema registry read API: the published contracts",
    ("GET", "/subjects"): "schema registry",
    ("GET", "/subjects/{subject}/versions"): "schema registry",
    ("GET", "/subjects/{subject}/versions/{version}"): "schema registry",
    ("GET", "/console"): "the monitor page holds no data; its API needs admin",
    ("GET", "/console/{name}"): "the page's script and stylesheet",
    ("GET", "/openapi.json"): "the interface description facilities integrate against",
    ("GET", "/docs"): "the same, rendered",
    ("GET", "/docs/oauth2-redirect"): "part of the rendered docs",
    ("GET", "/redoc"): "the same, rendered",
    ("GET", "/ping"): "ClickHouse liveness (port 8123)",
    ("HEAD", "/ping"): "ClickHouse liveness",
    ("GET", "/replicas_status"): "ClickHouse liveness",
    ("HEAD", "/replicas_status"): "ClickHouse liveness",
}

CLINICIANS = {"dr.wang", "dr.li"}
ADMIN = {"ops"}
#: Who may call each protected route: user names (their roles in test_documents_api), or
#: "facility" for the ingest door, which takes facility API keys only.
PROTECTED: dict[tuple[str, str], set[str] | str] = {
    ("POST", "/api/v1/sql"): {"li.analyst", "ops"},
    ("POST", "/api/v1/ingest/hl7v2"): "facility",
    ("POST", "/api/v1/ingest/cda"): "facility",
    ("POST", "/api/v1/ingest/json"): "facility",
    ("POST", "/api/v1/ingest/batch"): "facility",
    ("POST", "/api/v1/ingest/federation"): "facility",  # a platform's key (F1 is one here)
    ("GET", "/api/v1/empi/reviews"): ADMIN,
    ("GET", "/api/v1/empi/patients/{empi_id}/links"): ADMIN,
    ("POST", "/api/v1/empi/reviews/{pair_id}"): ADMIN,
    ("POST", "/api/v1/empi/merges"): ADMIN,
    ("POST", "/api/v1/empi/unmerges"): ADMIN,
    ("GET", "/api/v1/alerts"): CLINICIANS | ADMIN,
    ("POST", "/api/v1/alerts/{alert_id}/ack"): CLINICIANS | ADMIN,
    ("GET", "/api/v1/terminology/maps"): ADMIN,
    ("GET", "/api/v1/terminology/unmapped"): ADMIN,
    ("POST", "/api/v1/terminology/maps"): ADMIN,
    ("GET", "/api/v1/patients/{empi_id}/documents"): CLINICIANS,
    ("GET", "/api/v1/documents/{document_id}"): CLINICIANS,
    ("GET", "/api/v1/monitor/facilities"): ADMIN,
    ("GET", "/api/v1/monitor/series"): ADMIN,
    ("GET", "/api/v1/monitor/dead-letters"): ADMIN,
    ("GET", "/api/v1/monitor/unmapped"): ADMIN,
    ("GET", "/api/v1/monitor/alerts"): ADMIN,
    ("GET", "/api/v1/monitor/reviews"): ADMIN,
    ("GET", "/api/v1/monitor/overview"): ADMIN,
    ("POST", "/api/v1/monitor/dead-letters/{dead_letter_id}/retry"): ADMIN,
    ("GET", "/api/v1/facilities"): {"li.analyst", "ops"},
    ("GET", "/api/v1/facilities/{facility_id}"): {"li.analyst", "ops"},
    ("POST", "/api/v1/facilities"): ADMIN,
    ("PATCH", "/api/v1/facilities/{facility_id}"): ADMIN,
    ("POST", "/api/v1/facilities/{facility_id}/retire"): ADMIN,
    ("GET", "/api/v1/federation"): ADMIN,
    ("GET", "/api/v1/practitioners"): {"li.analyst", "ops"},
    ("GET", "/api/v1/practitioners/unknown"): {"li.analyst", "ops"},
    ("GET", "/api/v1/practitioners/{facility_id}/{local_id}"): {"li.analyst", "ops"},
    ("POST", "/api/v1/practitioners"): ADMIN,
    ("PATCH", "/api/v1/practitioners/{facility_id}/{local_id}"): ADMIN,
    ("POST", "/api/v1/practitioners/{facility_id}/{local_id}/retire"): ADMIN,
    # the ClickHouse HTTP interface (port 8123): analysts and admins
    ("GET", "/"): {"li.analyst", "ops"},
    ("POST", "/"): {"li.analyst", "ops"},
}

_MAP_FILE = ("facility_id,source_system,local_code,target_system,target_code\n"
             "F1,lab-test,CR77,LOINC,14682-9\n")


_NEW_FACILITY = itertools.count(1)


def request_for(method: str, path: str, who: str) -> dict[str, Any]:
    """A request a caller allowed on the route would make (valid body and parameters)."""
    filled = (path.replace("{schema_id}", "1").replace("{subject}", "hutong.std.patient-value")
              .replace("{version}", "1").replace("{empi_id}", "E-1").replace("{pair_id}", "P-1")
              .replace("{alert_id}", "A-1").replace("{document_id}", "2.16.156^NONE")
              .replace("{dead_letter_id}", "D-1").replace("{name}", "console.js")
              .replace("{facility_id}", "F2").replace("{local_id}", "D2"))
    body: dict[str, Any] = {}
    if path in ("/api/v1/empi/merges", "/api/v1/empi/unmerges"):
        body["json"] = {"survivor_empi_id": "E-1", "loser_empi_id": "E-2", "reviewer": who,
                        "reason": PATIENT_TEXT}
    elif path.startswith("/api/v1/empi/reviews/"):
        body["json"] = {"decision": "accept", "reviewer": who}
    elif path.endswith("/ack"):
        body["json"] = {"by": who, "note": PATIENT_TEXT}
    elif path == "/api/v1/facilities" and method == "POST":
        body["json"] = {"facility": {"id": f"NEW{next(_NEW_FACILITY)}", "name": "新机构"},
                        "reason": PATIENT_TEXT}
    elif path.startswith("/api/v1/facilities/"):
        body["json"] = {"facility": {"name": "改名"}} if method == "PATCH" else {}
    elif path == "/api/v1/practitioners" and method == "POST":
        body["json"] = {"practitioner": {"facility_id": "F1", "local_id": f"N{next(_NEW_FACILITY)}",
                                         "name": "新医生"}, "reason": PATIENT_TEXT}
    elif path.startswith("/api/v1/practitioners/") and method != "GET":
        body["json"] = {"practitioner": {"department": "内科"}} if method == "PATCH" else {}
    elif path == "/api/v1/sql":
        body["json"] = {"query": "SELECT 1 AS one"}
    elif path == "/api/v1/terminology/maps" and method == "POST":
        body = {"content": _MAP_FILE.encode(), "headers": {"content-type": "text/csv"}}
    elif path.startswith("/api/v1/ingest/"):
        body["content"] = b"MSH|^~\\&|LIS|F1|HUTONG|REGION|20261120093000||ADT^A01|R1|P|2.4\r"
    elif path == "/" and method == "POST":
        body["content"] = b"SELECT 1"
    elif path == "/":  # GET / without a query is ClickHouse's "Ok." (liveness)
        body["params"] = {"query": "SELECT 1"}
    return {"method": method, "url": filled, **body}


class RecordingProducer:
    """Kafka as far as the API can tell: every send is confirmed and kept."""

    def __init__(self) -> None:
        self.sent: list[OutRecord] = []

    async def send(self, records: Sequence[OutRecord]) -> None:
        self.sent.extend(records)

    def close(self) -> int:
        return 0


class MapsSeen:
    """The map feed's view of the maps in force: none."""

    store: dict[Any, Any] = {}  # noqa: RUF012

    def wait_ready(self, timeout: float) -> bool:
        return True


def routes(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path) of every route the app answers, included routers too."""
    flatten = getattr(fastapi.routing, "iter_route_contexts", None)  # FastAPI >= 0.165
    found = set()
    for route in (flatten(app.routes) if flatten else app.routes):
        path = getattr(route, "path_format", None) or route.path
        for method in getattr(route, "methods", None) or ():
            if method == "HEAD" and ("GET", path) in PUBLIC and ("HEAD", path) not in PUBLIC:
                continue  # starlette's automatic HEAD of a public GET
            found.add((method, path))
    return found


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    with open_warehouse(None, tmp_path_factory.mktemp("routes")) as opened:
        migrate(opened)
        yield opened


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DocumentStore]:
    with store_on("sqlite", tmp_path_factory.mktemp("route-docs")) as store:
        yield store


@pytest.fixture(scope="module")
def audit_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("route-audit")


@pytest.fixture(scope="module")
def apps(warehouse: Warehouse, documents: DocumentStore,
         audit_dir: Path) -> dict[str, FastAPI]:
    metrics = Metrics()
    registry = FacilityRegistry([Facility(id="F1", api_keys=[hash_api_key(FACILITY_KEY)],
                                          kind="区域卫生信息平台")])
    producer = RecordingProducer()
    audit = AuditLog(audit_dir)
    intake = Intake(producer, metrics, registry=registry, audit=audit)  # type: ignore[arg-type]
    feed = FacilityFeed({"bootstrap.servers": "127.0.0.1:9"}, registry)  # never started
    for facility in (*registry.facilities(), Facility(id="F2", name="改名和退役用")):
        feed.put(FacilityRecord(facility, 1, datetime.now(UTC), "registry-file"))
    staff = PractitionerFeed({"bootstrap.servers": "127.0.0.1:9"})  # never started
    staff.put(PractitionerRecord(Practitioner(facility_id="F2", local_id="D2", name="改名用"),
                                 None, 1, datetime.now(UTC), "practitioner-file"))
    api = create_api(metrics, warehouse=warehouse, users=users(), documents=documents,
                     intake=intake, facilities=registry, producer=producer,  # type: ignore[arg-type]
                     mapfeed=MapsSeen(), audit=audit,  # type: ignore[arg-type]
                     dead_letters=object(), facility_feed=feed,  # type: ignore[arg-type]
                     practitioner_feed=staff, pseudonym_key=b"route-test-key-of-32-bytes......")
    return {"api": api, "clickhouse": create_clickhouse_http(warehouse, users(), audit)}


@pytest.fixture(scope="module")
def clients(apps: dict[str, FastAPI]) -> Iterator[dict[str, httpx.Client]]:
    with serve(apps["api"]) as api_url, serve(apps["clickhouse"]) as ch_url, \
            httpx.Client(base_url=api_url, timeout=30) as api, \
            httpx.Client(base_url=ch_url, timeout=30) as clickhouse:
        yield {"api": api, "clickhouse": clickhouse}


def _client(clients: dict[str, httpx.Client], path: str) -> httpx.Client:
    return clients["clickhouse" if path in ("/", "/ping", "/replicas_status") else "api"]


def test_every_route_is_public_or_names_its_callers(apps: dict[str, FastAPI]) -> None:
    found = routes(apps["api"]) | routes(apps["clickhouse"])
    unlisted = found - set(PUBLIC) - set(PROTECTED)
    assert not unlisted, f"routes with neither a role nor a place in the public list: {unlisted}"
    assert not (set(PUBLIC) | set(PROTECTED)) - found, "the tables name routes that are gone"


@pytest.mark.parametrize(("method", "path"), sorted(PUBLIC))
def test_public_routes_answer_anyone(clients: dict[str, httpx.Client], method: str,
                                     path: str) -> None:
    answer = _client(clients, path).request(**request_for(method, path, "nobody"))
    assert answer.status_code < 400, answer.text


CALLERS = ["anonymous", "facility", *TOKENS]


def _headers(who: str) -> dict[str, str]:
    if who == "anonymous":
        return {}
    if who == "facility":
        return {"Authorization": f"Bearer {FACILITY_KEY}"}
    return as_(who)


@pytest.mark.parametrize("who", CALLERS)
@pytest.mark.parametrize(("method", "path"), sorted(PROTECTED))
def test_protected_routes_let_in_only_their_callers(clients: dict[str, httpx.Client],
                                                    method: str, path: str, who: str) -> None:
    allowed = PROTECTED[(method, path)]
    request = request_for(method, path, who)
    headers = {**request.pop("headers", {}), **_headers(who)}
    answer = _client(clients, path).request(**request, headers=headers)
    if who == "anonymous":
        assert answer.status_code == 401, answer.text
    elif allowed == "facility":  # a user's token is no facility key
        assert answer.status_code not in (401, 403) if who == "facility" \
            else answer.status_code == 401, answer.text
    elif who == "facility":  # nor is a facility key a user's token (ClickHouse says 403)
        assert answer.status_code in ((401, 403) if path == "/" else (401,)), answer.text
    elif who in allowed:
        assert answer.status_code not in (401, 403), answer.text
    else:
        assert answer.status_code == 403, answer.text


def _records(audit_dir: Path, action: str) -> list[dict[str, Any]]:
    return [r for r in AuditLog(audit_dir).records() if r["action"] == action]


def test_admin_actions_are_in_the_audit_log_with_who_and_no_patient_text(
        clients: dict[str, httpx.Client], audit_dir: Path) -> None:
    api = clients["api"]
    for method, path in [("POST", "/api/v1/empi/merges"), ("POST", "/api/v1/alerts/{alert_id}/ack"),
                         ("POST", "/api/v1/terminology/maps"), ("POST", "/api/v1/facilities")]:
        request = request_for(method, path, "ops")
        headers = {**request.pop("headers", {}), **as_("ops")}
        answer = api.request(**request, headers=headers)
        assert answer.status_code == 202, answer.text
    merge = _records(audit_dir, "empi.merge")[-1]
    assert (merge["principal"], merge["acting_as"], merge["survivor"], merge["loser"]) == (
        "ops", "ops", "E-1", "E-2")
    assert merge["decision_id"] and merge["address"] == "127.0.0.1"
    ack = _records(audit_dir, "alert.acknowledge")[-1]
    assert (ack["principal"], ack["alert_id"]) == ("ops", "A-1")
    upload = _records(audit_dir, "terminology.maps.upload")[-1]
    assert (upload["principal"], upload["maps"]) == ("ops", 1)
    added = _records(audit_dir, "facility.add")[-1]
    assert (added["principal"], added["acting_as"], added["version"]) == ("ops", "ops", 1)
    text = "".join(p.read_text("utf-8") for p in audit_dir.glob("audit-*.jsonl"))
    assert PATIENT_TEXT not in text and "张三" not in text
    assert verify(audit_dir) >= 3


def test_a_refused_token_is_audited_without_the_token(
        apps: dict[str, FastAPI], clients: dict[str, httpx.Client], audit_dir: Path) -> None:
    apps["api"].state.refusals_audited = KeyedLimiter(rate=1.0, burst=20)  # a fresh allowance
    before = len(_records(audit_dir, "api.refused"))
    answer = clients["api"].get("/api/v1/alerts",
                                headers={"Authorization": "Bearer guessed-token-123"})
    assert answer.status_code == 401
    [refused] = _records(audit_dir, "api.refused")[before:]
    assert (refused["path"], refused["address"], refused["reason"]) == (
        "/api/v1/alerts", "127.0.0.1", "the bearer token is not valid")
    text = "".join(p.read_text("utf-8") for p in audit_dir.glob("audit-*.jsonl"))
    assert "guessed-token-123" not in text


def test_warehouse_queries_are_audited_without_their_text(
        clients: dict[str, httpx.Client], audit_dir: Path) -> None:
    query = "SELECT '张三' AS name"
    assert clients["api"].post("/api/v1/sql", json={"query": query},
                               headers=as_("li.analyst")).status_code == 200
    assert clients["clickhouse"].post("/", content=query.encode(),
                                      headers=as_("li.analyst")).status_code == 200
    queried = _records(audit_dir, "warehouse.query")
    assert {(r["principal"], r["interface"]) for r in queried} >= {
        ("li.analyst", "api"), ("li.analyst", "clickhouse-http")}
    assert all(len(r["query_sha256"]) == 16 for r in queried)
    text = "".join(p.read_text("utf-8") for p in audit_dir.glob("audit-*.jsonl"))
    assert "张三" not in text


class FullDisk:
    def record(self, action: str, **details: object) -> dict[str, Any]:
        raise OSError(28, "No space left on device")


def test_an_action_the_audit_log_cannot_take_is_not_done(
        apps: dict[str, FastAPI], clients: dict[str, httpx.Client]) -> None:
    state = apps["api"].state
    producer: RecordingProducer = state.producer
    before = len(producer.sent)
    state.audit, kept = FullDisk(), state.audit
    try:
        request = request_for("POST", "/api/v1/empi/merges", "ops")
        answer = clients["api"].request(**request, headers=as_("ops"))
    finally:
        state.audit = kept
    assert answer.status_code == 503 and "audit" in answer.text
    assert len(producer.sent) == before  # nothing published


def test_a_read_is_refused_to_a_facility_key_even_on_the_ingest_facility(
        clients: dict[str, httpx.Client]) -> None:
    """A facility key opens the ingest door only: not the documents of its own patients."""
    answer = clients["api"].get("/api/v1/patients/E-1/documents",
                                headers=_headers("facility"))
    assert answer.status_code == 401
    assert json.loads(answer.text)["detail"] == "the bearer token is not valid"
