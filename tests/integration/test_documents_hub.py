"""The document store in a whole hub: an HL7 lab result in, a lab report (检验报告) out.

The hub runs its document sink (group ``hutong-sink-documents``) beside the
warehouse sink; a clinician reads the report through the hub's API, and the
read is in the store's access audit. Once with the embedded SQLite store, once
with ``docstore_url`` on PostgreSQL.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from connectors.facilities import hash_api_key
from hutong.config import Settings
from sinks.docstore.schema import documents
from tests.docstore_support import BACKENDS, postgres_schema

from .conftest import RunningHub, send, wait_for

pytestmark = pytest.mark.integration

TOKEN = "htk_clinician-of-the-document-tests"
ORU = ("MSH|^~\\&|LIS|DOCHOSP|HUTONG|REGION|20261122093000||ORU^R01^ORU_R01|DOC-ORU-1|P|2.4|||"
       "||UNICODE UTF-8\r"
       "PID|1||MRN77^^^DOCHOSP^MR||文档测试||19800101|F\r"
       "OBR|1|P77|F77|BCP^生化^L|||20261122090000\r"
       "OBX|1|NM|K^钾^L||4.1|mmol/L|3.5-5.5|N|||F\r").encode()


@pytest.fixture(scope="module", params=BACKENDS)
def doc_hub(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
            hub_settings: Callable[..., Settings]) -> Iterator[RunningHub]:
    """A hub per database: its own SQLite file, or HUTONG_DOCSTORE_URL on PostgreSQL."""
    data_dir = tmp_path_factory.mktemp("dochub")
    users = data_dir / "users.yaml"
    users.write_text(f"users:\n  - name: dr.wang\n    roles: [clinician]\n"
                     f"    tokens: ['{hash_api_key(TOKEN)}']\n", "utf-8")
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(postgres_schema()) if request.param == "postgresql" else None
        running = RunningHub(hub_settings(data_dir, users_file=users, docstore_url=url)).start()
        stack.callback(running.stop)
        yield running


def stored(hub: RunningHub) -> list[Any]:
    """This module's documents (the broker is shared: other hubs' events may pass by)."""
    store = hub.hub.documents
    assert store is not None
    with store.engine.connect() as conn:
        return list(conn.execute(select(documents.c.document_id, documents.c.empi_id,
                                        documents.c.kind)
                                 .where(documents.c.facility_id == "DOCHOSP")))


def test_a_lab_result_becomes_a_report_a_clinician_can_read(doc_hub: RunningHub) -> None:
    [(code, _, _)] = send(doc_hub, ORU)
    assert code == "AA"
    [(document_id, empi_id, kind)] = wait_for(lambda: stored(doc_hub))
    assert kind == "lab-report" and empi_id
    api = doc_hub.settings.api_url
    auth = {"Authorization": f"Bearer {TOKEN}"}
    index = httpx.get(f"{api}/api/v1/patients/{empi_id}/documents", headers=auth)
    assert index.status_code == 200
    assert [e["document_id"] for e in index.json()["documents"]] == [document_id]
    cda = httpx.get(f"{api}/api/v1/documents/{document_id}?format=cda", headers=auth)
    assert cda.status_code == 200 and "钾".encode() in cda.content
    assert doc_hub.hub.documents is not None
    audit = doc_hub.hub.documents.access_records(empi_id=empi_id)
    assert [(r.principal, r.action, r.outcome) for r in audit] == [
        ("dr.wang", "index", "allowed"), ("dr.wang", "read", "allowed")]
    health = httpx.get(f"{api}/healthz").json()
    assert health["components"]["documents"] == "ok"


def test_the_store_is_the_configured_one(doc_hub: RunningHub) -> None:
    assert doc_hub.hub.documents is not None
    on_postgres = doc_hub.settings.docstore_url is not None
    assert doc_hub.hub.documents.backend == ("postgresql" if on_postgres else "sqlite")
    assert Path(doc_hub.settings.data_dir / "documents.sqlite").is_file() != on_postgres
