"""The AsyncAPI topic catalog: generated from the schema catalog, committed, consistent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from fastavro import parse_schema

from schemas.asyncapi import asyncapi, render
from schemas.catalog import TOPIC_SPECS

COMMITTED = Path(__file__).parents[2] / "docs" / "asyncapi.yaml"


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


def test_the_committed_catalog_is_the_generated_one() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == render(), (
        "docs/asyncapi.yaml is stale: run `.venv/bin/python -m schemas.asyncapi > "
        "docs/asyncapi.yaml`")


def test_every_topic_is_a_channel_with_its_kafka_binding() -> None:
    document = asyncapi()
    assert document["asyncapi"] == "3.0.0"
    by_address = {channel["address"]: channel for channel in document["channels"].values()}
    assert set(by_address) == {spec.name for spec in TOPIC_SPECS}
    for spec in TOPIC_SPECS:
        binding = by_address[spec.name]["bindings"]["kafka"]
        assert binding["partitions"] == spec.partitions
        assert binding["topicConfiguration"]["cleanup.policy"] == [spec.cleanup_policy]
        assert binding["topicConfiguration"].get("retention.ms") == spec.retention_ms
        [message] = by_address[spec.name]["messages"].values()
        assert message["$ref"] == f"#/components/messages/{spec.schema}"


def test_every_reference_resolves_and_every_payload_is_avro() -> None:
    document = yaml.safe_load(render())
    for ref in _refs(document):
        assert _resolve(document, ref) is not None
    for name, message in document["components"]["messages"].items():
        assert message["payload"]["schemaFormat"].startswith("application/vnd.apache.avro")
        parsed = parse_schema(message["payload"]["schema"])
        assert parsed["type"] == "record", name
        assert message["bindings"]["kafka"]["schemaIdPayloadEncoding"] == "confluent"
