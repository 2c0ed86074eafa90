"""The schema catalog: every Avro contract of the hub, its fixed id, and the topics it travels on.

Each ``*.avsc`` beside this module is loaded once, at import, with fastavro's ``load_schema``,
which inlines the shared named types from ``hutong.PatientIdentity.avsc`` and
``hutong.Identifier.avsc``; every entry is therefore self-contained. The schema ids in
``SCHEMA_IDS`` are the ids of the embedded registry and of the wire format in embedded mode:
once published an id never changes, and a new schema takes the next free number.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastavro.schema import load_schema

from hutong.errors import SchemaError

__all__ = [
    "EVENT_TYPES",
    "SCHEMA_IDS",
    "TOPICS",
    "TOPIC_SPECS",
    "SchemaEntry",
    "TopicSpec",
    "all_schemas",
    "by_id",
    "for_topic",
    "schema",
    "subject_for",
]

#: The canonical event types, in the order of the design; each has ``hutong.events.<type>``
#: and ``hutong.std.<type>`` topics and a ``<type>.avsc`` schema.
EVENT_TYPES: tuple[str, ...] = (
    "patient",
    "encounter",
    "lab-result",
    "imaging-report",
    "order",
    "medication",
    "diagnosis",
    "document",
)

#: Schema name (the ``.avsc`` file name without extension) -> schema id. Never renumber.
SCHEMA_IDS: dict[str, int] = {
    "raw-envelope": 1,
    "patient": 2,
    "encounter": 3,
    "lab-result": 4,
    "imaging-report": 5,
    "order": 6,
    "medication": 7,
    "diagnosis": 8,
    "document": 9,
    "dead-letter": 10,
    "empi-link": 11,
    "empi-review": 12,
    "concept-map": 13,
    "unmapped-code": 14,
    "critical-alert": 15,
    "alert-ack": 16,
    "empi-decision": 17,
    "empi-golden": 18,
    "facility": 19,
    "practitioner": 20,
    "unknown-practitioner": 21,
    "federation-conflict": 22,
    "rule-file": 23,
}

_SCHEMA_DIR = Path(__file__).parent
_RAW_CONTENT_TYPES = ("hl7v2", "cda", "json")
_DAY_MS = 24 * 60 * 60 * 1000


@dataclass(frozen=True)
class SchemaEntry:
    """One schema of the catalog: its name, id, self-contained JSON and fastavro-parsed form."""

    name: str
    schema_id: int
    schema_str: str
    parsed: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class TopicSpec:
    """One Kafka topic of the contract: what the stack provisions and the docs describe.

    ``key`` describes the record key: UTF-8 text, several parts joined with ``|``.
    """

    name: str
    schema: str
    key: str
    what: str
    partitions: int = 3
    #: A topic whose order is global (one partition) keeps its count whatever the
    #: hub's default (``HUTONG_KAFKA_PARTITIONS``) says.
    fixed_partitions: bool = False
    cleanup_policy: str = "delete"
    #: ``retention.ms``; None leaves it unset (compacted topics keep the latest value per key).
    retention_ms: int | None = 7 * _DAY_MS


def _compacted(name: str, schema: str, key: str, what: str) -> TopicSpec:
    return TopicSpec(name, schema, key, what, cleanup_policy="compact", retention_ms=None)


TOPIC_SPECS: tuple[TopicSpec, ...] = (
    *(
        TopicSpec(
            f"hutong.raw.{kind}",
            "raw-envelope",
            "facility|message control id",
            f"{kind} messages as they arrived, byte for byte, with their envelope",
        )
        for kind in _RAW_CONTENT_TYPES
    ),
    *(
        TopicSpec(
            f"hutong.events.{kind}",
            kind,
            "facility|source patient id",
            f"canonical {kind} events as the facility said them",
        )
        for kind in EVENT_TYPES
    ),
    *(
        TopicSpec(
            f"hutong.std.{kind}",
            kind,
            "EMPI id (facility|source patient id until linked)",
            f"linked and translated {kind} events: what apps and sinks read",
        )
        for kind in EVENT_TYPES
    ),
    _compacted(
        "hutong.empi.links",
        "empi-link",
        "facility|source patient id",
        "the link of each facility patient id to its EMPI id",
    ),
    TopicSpec(
        "hutong.empi.review",
        "empi-review",
        "candidate pair id",
        "uncertain matches for a person to decide, and the decisions taken on them",
    ),
    _compacted(
        "hutong.empi.golden",
        "empi-golden",
        "EMPI id",
        "the golden record of each resident (survivorship across the linked records)",
    ),
    TopicSpec(
        "hutong.empi.decisions",
        "empi-decision",
        "decision id",
        "reviewers' decisions: accept or reject a pair, merge or unmerge two EMPI ids",
        partitions=1,
        fixed_partitions=True,
        retention_ms=30 * _DAY_MS,
    ),
    _compacted(
        "hutong.terminology.maps",
        "concept-map",
        "facility|source system|local code",
        "code maps from local codes to standard codes",
    ),
    TopicSpec(
        "hutong.terminology.unmapped",
        "unmapped-code",
        "facility|code system|local code",
        "local codes no map covers",
    ),
    TopicSpec(
        "hutong.alerts.critical",
        "critical-alert",
        "alert id",
        "critical-value alerts and their escalations",
    ),
    TopicSpec(
        "hutong.alerts.ack", "alert-ack", "alert id", "acknowledgements of critical-value alerts"
    ),
    _compacted(
        "hutong.registry.facilities",
        "facility",
        "facility id",
        "the facility registry: each medical institution's latest record, active or retired",
    ),
    _compacted(
        "hutong.registry.practitioners",
        "practitioner",
        "facility|staff id",
        "the practitioner registry: each member of medical staff's latest record at a facility",
    ),
    TopicSpec(
        "hutong.registry.unknown-practitioners",
        "unknown-practitioner",
        "facility|staff id",
        "clinicians named on events whom the practitioner registry does not know",
    ),
    _compacted(
        "hutong.alerts.rule-files",
        "rule-file",
        "file name, or upstream/<file name>",
        "the critical-value lists (危急值目录) the stream workers apply: the hub's own and "
        "the platform above's",
    ),
    TopicSpec(
        "hutong.federation.conflicts",
        "federation-conflict",
        "the entry's key: facility|source system|local code, a file name, or a facility id",
        "dictionary entries from the platform above that this hub's own contradict (kept)",
        retention_ms=30 * _DAY_MS,
    ),
    TopicSpec(
        "hutong.dlq",
        "dead-letter",
        "the failed record's original key",
        "dead letters with stage and reason",
        retention_ms=30 * _DAY_MS,
    ),
)

#: Topic name -> schema name, for every topic of the contract.
TOPICS: dict[str, str] = {spec.name: spec.schema for spec in TOPIC_SPECS}


def _load(name: str, schema_id: int) -> SchemaEntry:
    parsed = load_schema(str(_SCHEMA_DIR / f"{name}.avsc"))
    if not isinstance(parsed, dict) or parsed.get("type") != "record":
        raise SchemaError(f"{name}.avsc is not a record schema")
    # fastavro marks the parsed top level with private keys; the rest is plain Avro JSON.
    plain = {key: value for key, value in parsed.items() if not key.startswith("__")}
    schema_str = json.dumps(plain, ensure_ascii=False, separators=(",", ":"))
    return SchemaEntry(name=name, schema_id=schema_id, schema_str=schema_str, parsed=parsed)


_BY_NAME: dict[str, SchemaEntry] = {name: _load(name, sid) for name, sid in SCHEMA_IDS.items()}
_BY_ID: dict[int, SchemaEntry] = {entry.schema_id: entry for entry in _BY_NAME.values()}


def schema(name: str) -> SchemaEntry:
    """The catalog entry called ``name`` (``lab-result``, ``dead-letter``, ...)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise SchemaError(f"no schema named {name!r} in the catalog") from None


def for_topic(topic: str) -> SchemaEntry:
    """The schema of the values of ``topic``."""
    try:
        return _BY_NAME[TOPICS[topic]]
    except KeyError:
        raise SchemaError(f"topic {topic!r} is not in the topic catalog") from None


def by_id(schema_id: int) -> SchemaEntry:
    """The catalog entry with the embedded-registry id ``schema_id``."""
    try:
        return _BY_ID[schema_id]
    except KeyError:
        raise SchemaError(f"no schema with id {schema_id} in the catalog") from None


def all_schemas() -> list[SchemaEntry]:
    """Every catalog entry, in id order."""
    return sorted(_BY_ID.values(), key=lambda entry: entry.schema_id)


def subject_for(topic: str) -> str:
    """The registry subject of ``topic``'s values (Confluent TopicNameStrategy)."""
    return f"{topic}-value"
