"""The Faust application: events in, standard events out.

Agents stay thin: decode, call the pure step, send, and wait for the delivery
reports of a batch before Faust may commit its offsets (at least once; the
deterministic ``event_id`` lets sinks collapse repeats). Anything that cannot be
decoded goes to ``hutong.dlq`` with stage ``stream`` and the reason.

Tansu needs short group timeouts: with Kafka's defaults a new member waits
about 23 s for its first assignment, with a 6 s session about 3 s.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable
from typing import Any

import faust

from hutong.config import Settings
from hutong.errors import SchemaError, WireFormatError
from producers.records import DLQ_TOPIC, consumed_dead_letter, dead_letter_headers
from schemas import wire
from schemas.catalog import EVENT_TYPES
from schemas.registry import EMBEDDED, Resolver
from streams.standardize import standardize, std_key, std_topic

__all__ = ["STREAMS_GROUP", "create_app"]

log = logging.getLogger(__name__)

STREAMS_GROUP = "hutong-streams"
_BATCH = 500
_BATCH_WITHIN_S = 0.05


def _faust_kafka_settings(settings: Settings) -> dict[str, Any]:
    return {
        "broker": f"kafka://{settings.bootstrap}",
        "broker_session_timeout": 6.0,
        "broker_heartbeat_interval": 1.0,
        "broker_rebalance_timeout": 10.0,
        "producer_acks": -1,
        "consumer_auto_offset_reset": "earliest",
    }


def create_app(settings: Settings, ids: Resolver = EMBEDDED) -> faust.App:
    """Build the Faust app with its agents; nothing connects until it runs."""
    app = faust.App(
        STREAMS_GROUP,
        value_serializer="raw",
        key_serializer="raw",
        web_enabled=False,
        topic_allow_declare=False,
        topic_disable_leader=True,
        store="memory://",
        datadir=str(settings.data_dir / "streams"),
        **_faust_kafka_settings(settings),
    )
    sources = [f"hutong.events.{t}" for t in EVENT_TYPES]
    source = app.topic(*sources, value_type=bytes, key_type=bytes)
    outputs = {name: app.topic(std_topic(name), value_type=bytes, key_type=bytes)
               for name in sources}
    dlq = app.topic(DLQ_TOPIC, value_type=bytes, key_type=bytes)

    @app.agent(source, name="standardize")
    async def standardize_agent(stream: Any) -> None:
        async for batch in stream.take_events(_BATCH, within=_BATCH_WITHIN_S):
            await _durably(_process(batch))

    async def _process(batch: list[Any]) -> None:
        pending = []
        for event in batch:
            target = outputs[event.message.topic]
            try:
                _, record = wire.decode(event.value, ids.by_id)
                out = standardize(record)
                value = wire.encode(ids.for_topic(target.get_topic_name()), out)
            except (WireFormatError, SchemaError) as exc:
                pending.append(await _dead_letter(dlq, ids, event, str(exc)))
                continue
            except Exception as exc:
                reason = f"internal error in standardize ({type(exc).__name__})"
                log.error("event at %s[%d]@%d failed: %s", event.message.topic,
                          event.message.partition, event.message.offset, reason)
                pending.append(await _dead_letter(dlq, ids, event, reason))
                continue
            pending.append(await target.send(key=std_key(out), value=value))
        await asyncio.gather(*pending)

    return app


async def _durably(work: Awaitable[None]) -> None:
    """Run a batch's sends to Kafka's confirmation, or stop the worker before Faust acks it.

    ``take_events`` acknowledges a batch when the loop moves on, even when the body
    raised; so any failure to send or to have a send confirmed exits at once. The hub
    restarts the worker, which reads the batch again (the sinks are idempotent).
    """
    try:
        await work
    except Exception:
        log.critical("Kafka did not confirm a batch of standard events; exiting so that "
                     "its offsets are not committed", exc_info=True)
        logging.shutdown()
        os._exit(70)


async def _dead_letter(dlq: Any, ids: Resolver, event: Any, reason: str) -> Any:
    msg = event.message
    letter = consumed_dead_letter("stream", msg.topic, msg.partition, msg.offset, msg.key,
                                  event.value or b"", reason)
    log.warning("undecodable event at %s: %s", letter["location"], reason)
    return await dlq.send(key=msg.key, value=wire.encode(ids.for_topic(DLQ_TOPIC), letter),
                          headers=dead_letter_headers(letter))
