"""The webhook sink: what it sends, how it signs, and which failures it retries."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from hutong.errors import DeliveryError
from sinks.base import Decoded
from sinks.webhook import WebhookSink

AT = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def alert(**fields: Any) -> Decoded:
    record = {"alert_id": "a1", "status": "raised", "escalation_level": 0, "raised_at": AT,
              "empi_id": "E1", "rule_id": "K-high", **fields}
    return Decoded("hutong.alerts.critical", 0, 7, "critical-alert", record)


def sink(handler: Any, secret: str | None = None, urls: tuple[str, ...] = (
        "https://ward.example/alerts?token=t0p",)) -> tuple[WebhookSink, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    client = httpx.Client(transport=httpx.MockTransport(record))
    return WebhookSink(urls, secret, client), seen


def test_each_alert_state_is_posted_signed_with_a_delivery_id() -> None:
    webhooks, seen = sink(lambda request: httpx.Response(204), secret="s3cret")
    assert webhooks.write([alert(), alert(status="escalated", escalation_level=1)]) == []
    first, second = seen
    body = json.loads(first.content)
    assert (body["alert_id"], body["raised_at"]) == ("a1", "2026-12-04T09:00:00+00:00")
    assert first.headers["x-hutong-delivery"] == "a1:raised:0"
    assert second.headers["x-hutong-delivery"] == "a1:escalated:1"
    expected = hmac.new(b"s3cret", first.content, hashlib.sha256).hexdigest()
    assert first.headers["x-hutong-signature"] == f"sha256={expected}"


@pytest.mark.parametrize("status", [500, 503, 429])
def test_a_receiver_that_may_take_it_later_makes_the_batch_retry(status: int) -> None:
    webhooks, _ = sink(lambda request: httpx.Response(status))
    with pytest.raises(DeliveryError, match=f"answered {status}") as raised:
        webhooks.write([alert()])
    assert "t0p" not in str(raised.value)  # a token in the query string stays out of logs


def test_an_unreachable_receiver_makes_the_batch_retry() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    webhooks, _ = sink(down)
    with pytest.raises(DeliveryError, match="unreachable"):
        webhooks.write([alert()])


def test_a_receiver_that_refuses_makes_that_alert_a_dead_letter_and_the_rest_go_on() -> None:
    webhooks, seen = sink(lambda request: httpx.Response(
        403 if json.loads(request.content)["alert_id"] == "bad" else 200))
    rejected = webhooks.write([alert(alert_id="bad"), alert(alert_id="good")])
    assert [(r.item.record["alert_id"], r.reason) for r in rejected] == [
        ("bad", "webhook https://ward.example/alerts refused the alert (403)")]
    assert len(seen) == 2


def test_without_a_secret_there_is_no_signature() -> None:
    webhooks, seen = sink(lambda request: httpx.Response(200))
    webhooks.write([alert()])
    assert "x-hutong-signature" not in seen[0].headers
