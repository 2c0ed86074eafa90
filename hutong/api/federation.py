"""``GET /api/v1/federation``: how this hub federates, and what came down (admins).

What goes up (the platform id, the mode, the event types, the rules by name; no
key), and the downlink's state: how many code maps from above were applied, were
already the same, or conflicted with this hub's own, and the latest conflicts
(docs/federation.md).
"""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import APIRouter, Depends, Request

from hutong.api.auth import require
from hutong.federation.config import Federation
from hutong.federation.downlink import Downlink

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/federation", tags=["federation"],
                   dependencies=[Depends(require("admin"))])


@router.get("")
def federation(request: Request) -> dict[str, Any]:
    """This hub's federation: up and down."""
    config: Federation | None = getattr(request.app.state, "federation", None)
    if config is None:
        return {"platform_id": None, "up": None, "down": None,
                "note": "this hub has no federation file (docs/federation.md)"}
    downlinks: list[Downlink[Any]] = getattr(request.app.state, "downlinks", [])
    up = config.up
    return {
        "platform_id": config.platform_id,
        "up": None if up is None else {
            "mode": up.mode, "event_types": list(up.event_types),
            "to": str(httpx.URL(up.url).copy_with(query=None)) if up.url else
            up.bootstrap or str(up.report_dir),
            "rules": [{"name": r.name, "action": r.action, "event_types": list(r.event_types),
                       "codes": list(r.codes)} for r in up.rules]},
        "down": None if config.down is None else {
            "upstream": config.down.name, "running": bool(downlinks),
            **{d.kind: d.status() for d in downlinks},
            "conflicts": sorted((c for d in downlinks for c in d.status()["conflicts"]),
                                key=lambda c: c["detected_at"])},
    }
