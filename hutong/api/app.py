"""The hub's HTTP API: health, metrics, the schema-registry read API, SQL."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hutong.api import registry, sql
from hutong.metrics import Metrics
from sinks.warehouse import Warehouse

__all__ = ["create_api"]

HealthCheck = Callable[[], dict[str, str]]


def create_api(metrics: Metrics, *, warehouse: Warehouse | None,
               health: HealthCheck | None = None, api_token: str | None = None,
               serve_registry: bool = True) -> FastAPI:
    """Build the FastAPI app; the hub runs it with uvicorn on ``http_port``."""
    app = FastAPI(title="hutong", summary="Regional health data-exchange hub",
                  version="0.1.0")
    app.state.warehouse = warehouse
    app.state.api_token = api_token

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
    return app
