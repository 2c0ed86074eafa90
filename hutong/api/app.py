"""The hub's HTTP API: health, metrics, the schema-registry read API, SQL, the exchange
monitor and its console."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from connectors.facilities import FacilityRegistry
from connectors.http import federation as federation_ingest
from connectors.http import ingest
from hutong.api import alerts, console, empi, monitor, registry, sql, terminology
from hutong.api import documents as documents_api
from hutong.api import facilities as facilities_api
from hutong.api import federation as federation_api
from hutong.api import practitioners as practitioners_api
from hutong.audit import AuditLog
from hutong.federation.config import Federation
from hutong.federation.downlink import Downlink
from hutong.metrics import Metrics
from hutong.monitor.retry import DeadLetterSource, DlqReader, RetryLedger
from hutong.registry.facilities import FacilityFeed
from hutong.registry.practitioners import PractitionerFeed
from hutong.users import Users
from producers.intake import Intake
from producers.kafka import AsyncProducer
from schemas.registry import EMBEDDED, Resolver
from sinks.docstore.store import DocumentStore
from sinks.warehouse import Warehouse
from streams.mapfeed import MapFeed

__all__ = ["create_api"]

HealthCheck = Callable[[], dict[str, str]]


def create_api(metrics: Metrics, *, warehouse: Warehouse | None,
               health: HealthCheck | None = None, api_token: str | None = None,
               serve_registry: bool = True, intake: Intake | None = None,
               facilities: FacilityRegistry | None = None,
               max_body_bytes: int = 16 * 1024 * 1024, producer: AsyncProducer | None = None,
               ids: Resolver = EMBEDDED, mapfeed: MapFeed | None = None,
               users: Users | None = None,
               documents: DocumentStore | None = None,
               kafka_config: dict[str, Any] | None = None, audit: AuditLog | None = None,
               dead_letters: DeadLetterSource | None = None,
               retry_intake: Intake | None = None,
               facility_feed: FacilityFeed | None = None,
               practitioner_feed: PractitionerFeed | None = None,
               pseudonym_key: bytes | None = None,
               federation: Federation | None = None,
               downlinks: Sequence[Downlink[Any]] = (),
               monitor_cache_s: float = monitor.CACHE_S) -> FastAPI:
    """Build the FastAPI app; the hub runs it with uvicorn on ``http_port``.

    With an ``intake`` (and the ``facilities`` whose API keys open it) the
    ingest routes take HL7 v2, CDA, JSON and batch files; with a ``producer``
    the EMPI routes take reviewers' decisions; with the ``documents`` store the document
    routes answer clinicians (every read audited there). The exchange monitor retries
    dead letters through the ``retry_intake`` (default: the ``intake``; a process with
    the API and no connectors has one for retries only, and takes no ingest), reading
    them back from ``hutong.dlq`` with ``kafka_config`` (or the ``dead_letters`` source
    given), each retry in the ``audit`` log.
    """
    app = FastAPI(title="hutong", summary="Regional health data-exchange hub",
                  version="0.1.0")
    app.state.warehouse = warehouse
    app.state.users = users if users is not None else Users(api_token=api_token)
    app.state.intake = intake
    app.state.retry_intake = retry_intake if retry_intake is not None else intake
    app.state.registry = facilities if facilities is not None else FacilityRegistry()
    app.state.max_body_bytes = max_body_bytes
    app.state.producer = producer
    app.state.ids = ids
    app.state.mapfeed = mapfeed
    app.state.facility_feed = facility_feed
    app.state.practitioner_feed = practitioner_feed
    app.state.pseudonym_key = pseudonym_key
    app.state.federation = federation
    app.state.downlinks = list(downlinks)
    app.state.documents = documents
    app.state.metrics = metrics
    app.state.audit = audit
    app.state.dead_letter_source = dead_letters if dead_letters is not None else (
        DlqReader(kafka_config, ids) if kafka_config is not None else None)
    app.state.retries = RetryLedger()
    app.state.monitor_answers = monitor.Answers(monitor_cache_s)

    @app.get("/healthz", tags=["operations"])
    def healthz(response: Response) -> dict[str, object]:
        """Each component's state; 503 when one is down."""
        components = health() if health else {}
        ok = all(state == "ok" for state in components.values())
        response.status_code = 200 if ok else 503
        return {"status": "ok" if ok else "degraded", "components": components}

    @app.get("/metrics", tags=["operations"])
    def prometheus() -> Response:
        """Prometheus text exposition."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    if serve_registry:
        app.include_router(registry.router)
    app.include_router(sql.router)
    app.include_router(ingest.router)
    app.include_router(empi.router)
    app.include_router(alerts.router)
    app.include_router(terminology.router)
    app.include_router(facilities_api.router)
    app.include_router(practitioners_api.router)
    app.include_router(federation_ingest.router)
    app.include_router(federation_api.router)
    app.include_router(documents_api.router)
    app.include_router(monitor.router)
    app.include_router(console.router)
    return app
