"""Provision every topic of the public contract, idempotently."""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from hutong.errors import StackError
from schemas.catalog import TOPIC_SPECS, TopicSpec
from streams.topology import INTERNAL_TOPIC_SPECS

__all__ = ["ensure_topics", "topic_config"]

log = logging.getLogger(__name__)


def topic_config(spec: TopicSpec) -> dict[str, str]:
    """The topic-level settings a spec asks for."""
    config = {"cleanup.policy": spec.cleanup_policy}
    if spec.retention_ms is not None:
        config["retention.ms"] = str(spec.retention_ms)
    return config


def _partitions(spec: TopicSpec, default: int | None) -> int:
    if spec.fixed_partitions or default is None:
        return spec.partitions
    return default


def ensure_topics(client_config: dict[str, Any], *, partitions: int | None = None,
                  replication: int = 1, timeout: float = 15.0) -> list[str]:
    """Create the contract's topics and the stream worker's own that do not exist yet;
    return those created."""
    admin = AdminClient(dict(client_config))
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = [
        NewTopic(spec.name, _partitions(spec, partitions), replication,
                 config=topic_config(spec))
        for spec in (*TOPIC_SPECS, *INTERNAL_TOPIC_SPECS)
        if spec.name not in existing
    ]
    if not wanted:
        return []
    created: list[str] = []
    for name, future in admin.create_topics(wanted, request_timeout=timeout).items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue  # another process won the race: fine
            raise StackError(f"cannot create topic {name}: {exc.args[0].str()}") from exc
    log.info("created %d topics", len(created))
    return sorted(created)
