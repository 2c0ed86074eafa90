"""Critical-value alerts to apps that cannot read Kafka: an HTTP POST per alert state.

The hub runs this sink on ``hutong.alerts.critical`` when webhook URLs are set
(``HUTONG_ALERT_WEBHOOK_URLS``). Each alert state (raised, each escalation, the
acknowledgement) is POSTed as JSON to every URL, with headers a receiver can
rely on:

``X-Hutong-Delivery``
    ``<alert id>:<status>:<escalation level>``, the same on every retry: a
    receiver drops repeats by it (delivery is at least once).
``X-Hutong-Signature``
    ``sha256=<hex>``, HMAC-SHA256 of the body with the shared secret
    (``HUTONG_ALERT_WEBHOOK_SECRET``), when one is set.

A receiver that is down or answers 5xx or 429 makes the write fail, and the
runner retries the batch with back-off, committing nothing meanwhile: no alert
is skipped. A 4xx other than 429 says the receiver will never take the alert
(a wrong URL, a refused signature): that alert becomes a dead letter with the
status code, and the others go on.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import httpx

from hutong.errors import DeliveryError
from sinks.base import Decoded, Rejected

__all__ = ["WebhookSink", "alert_body"]

_TIMEOUT_S = 10.0


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    raise TypeError(f"cannot send a {type(value).__name__} as JSON")


def alert_body(alert: dict[str, Any]) -> bytes:
    """The JSON body of one alert state: the record of schemas/critical-alert.avsc."""
    return json.dumps(alert, default=_jsonable, ensure_ascii=False,
                      separators=(",", ":")).encode()


class WebhookSink:
    """POSTs each alert record to every URL; see the module."""

    name = "webhook"

    def __init__(self, urls: Sequence[str], secret: str | None = None,
                 client: httpx.Client | None = None) -> None:
        self._urls = list(urls)
        self._secret = secret.encode() if secret else None
        self._client = client or httpx.Client(timeout=_TIMEOUT_S)

    def _headers(self, alert: dict[str, Any], body: bytes) -> dict[str, str]:
        headers = {"Content-Type": "application/json; charset=utf-8",
                   "X-Hutong-Delivery": f"{alert['alert_id']}:{alert['status']}:"
                                        f"{alert['escalation_level']}"}
        if self._secret is not None:
            digest = hmac.new(self._secret, body, hashlib.sha256).hexdigest()
            headers["X-Hutong-Signature"] = f"sha256={digest}"
        return headers

    def write(self, batch: Sequence[Decoded]) -> list[Rejected]:
        rejected: list[Rejected] = []
        for item in batch:
            if item.schema_name != "critical-alert":
                continue  # dead letters and the like have no receiver here
            body = alert_body(item.record)
            headers = self._headers(item.record, body)
            for url in self._urls:
                reason = self._post(url, body, headers)
                if reason is not None:
                    rejected.append(Rejected(item, reason))
                    break
        return rejected

    def _post(self, url: str, body: bytes, headers: dict[str, str]) -> str | None:
        """None when delivered; the reason when the receiver will never take it. Raises
        DeliveryError when it may later (the runner retries)."""
        where = httpx.URL(url).copy_with(query=None)  # no query string: it may hold a token
        try:
            response = self._client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"webhook {where} unreachable ({type(exc).__name__})") from exc
        if response.status_code < 300:
            return None
        if response.status_code >= 500 or response.status_code == 429:
            raise DeliveryError(f"webhook {where} answered {response.status_code}; retrying")
        return f"webhook {where} refused the alert ({response.status_code})"

    def close(self) -> None:
        self._client.close()
