"""Who may call what: the warehouse query route and the admin routes, role by role.

The API runs under uvicorn on a free port over a real chDB warehouse; no Kafka
producer, so a request that passes the role check ends in 503 ("cannot write to
Kafka"), which is how these tests tell "let in" from "turned away".
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hutong.api.app import create_api
from hutong.metrics import Metrics
from sinks.warehouse import Warehouse, migrate, open_warehouse

from .test_documents_api import as_, serve, users

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    with open_warehouse(None, tmp_path_factory.mktemp("roles")) as opened:
        migrate(opened)
        yield opened


@pytest.fixture(scope="module")
def client(warehouse: Warehouse) -> Iterator[httpx.Client]:
    with serve(create_api(Metrics(), warehouse=warehouse, users=users())) as url, \
            httpx.Client(base_url=url, timeout=30) as http:
        yield http


@pytest.mark.parametrize(("who", "status"), [
    (None, 401), ("dr.wang", 403), ("li.analyst", 200), ("ops", 200)])
def test_only_analysts_and_admins_query_the_warehouse(client: httpx.Client, who: str | None,
                                                      status: int) -> None:
    headers = as_(who) if who else {}
    answer = client.post("/api/v1/sql", json={"query": "SELECT 1 AS one"}, headers=headers)
    assert answer.status_code == status, answer.text


@pytest.mark.parametrize("query", [
    "SELECT 'x' INTO/**/OUTFILE '{path}'",
    "SELECT 'x' INTO -- a comment\n OUTFILE '{path}'",
    "SELECT * FROM file/**/('{path}')",
])
def test_a_comment_does_not_hide_a_file_write_or_read(client: httpx.Client, tmp_path: Path,
                                                       query: str) -> None:
    target = tmp_path / "written.txt"
    answer = client.post("/api/v1/sql", json={"query": query.format(path=target)},
                         headers=as_("li.analyst"))
    assert answer.status_code == 400, answer.text
    assert not target.exists()


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/api/v1/empi/merges",
     {"survivor_empi_id": "E-1", "loser_empi_id": "E-2", "reviewer": "ops"}),
    ("GET", "/api/v1/empi/reviews", None),
    ("GET", "/api/v1/terminology/maps", None),
])
@pytest.mark.parametrize(("who", "status"), [
    (None, 401), ("dr.wang", 403), ("li.analyst", 403), ("ops", None)])
def test_admin_routes_are_for_admins(client: httpx.Client, method: str, path: str,
                                     body: dict[str, str] | None, who: str | None,
                                     status: int | None) -> None:
    headers = as_(who) if who else {}
    answer = client.request(method, path, json=body, headers=headers)
    if status is None:  # let in: 200 for a read, 503 for a write without Kafka
        assert answer.status_code in (200, 503), answer.text
    else:
        assert answer.status_code == status, answer.text


def test_a_decision_is_recorded_under_the_callers_own_name(client: httpx.Client) -> None:
    answer = client.post("/api/v1/empi/merges", headers=as_("ops"), json={
        "survivor_empi_id": "E-1", "loser_empi_id": "E-2", "reviewer": "dr.someone-else"})
    assert answer.status_code == 403 and "own name" in answer.text


@pytest.mark.parametrize(("who", "by", "status"), [
    ("li.analyst", "li.analyst", 403),  # analysts do not acknowledge alerts
    ("dr.wang", "dr.li", 403),          # nor does one clinician for another
    ("dr.wang", "dr.wang", 503),        # let in (no Kafka here)
])
def test_clinicians_acknowledge_alerts_as_themselves(client: httpx.Client, who: str, by: str,
                                                     status: int) -> None:
    answer = client.post("/api/v1/alerts/A-1/ack", headers=as_(who), json={"by": by})
    assert answer.status_code == status, answer.text


def test_without_users_only_this_machine_and_not_other_sites(warehouse: Warehouse) -> None:
    """No users configured (a development hub): this machine's tools act as ``local``, but
    a web page in its browser (another Origin) or a rebound name (another Host) does not."""
    with serve(create_api(Metrics(), warehouse=warehouse)) as url, \
            httpx.Client(base_url=url, timeout=30) as http:
        query = {"query": "SELECT 1 AS one"}
        assert http.post("/api/v1/sql", json=query).status_code == 200
        same = url.removeprefix("http://")
        assert http.post("/api/v1/sql", json=query,
                         headers={"Origin": f"http://{same}"}).status_code == 200
        assert http.post("/api/v1/sql", json=query,
                         headers={"Origin": "http://evil.example"}).status_code == 403
        assert http.post("/api/v1/sql", json=query,
                         headers={"Host": "rebound.example"}).status_code == 403
