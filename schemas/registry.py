"""The schema catalog as a Confluent Schema Registry sees it, in both deployment modes.

Embedded mode: the hub answers the registry's read API itself. The functions here build the
status and JSON body of each endpoint from the catalog, as pure functions; the HTTP API mounts
them. They cover what confluent-kafka's ``SchemaRegistryClient`` asks for when an
``AvroDeserializer`` reads a hutong topic (``GET /schemas/ids/{id}?subject=<topic>-value``)
and what tools list (subjects, versions). Every subject has exactly one version, 1, and the
schema ids are the catalog's.

External mode (``HUTONG_SCHEMA_REGISTRY_URL``): ``register_all`` registers every topic's
subject with compatibility BACKWARD and returns the ids the registry chose; an ``IdMap`` built
from them gives the catalog entries carrying those ids, for ``wire.encode`` and ``wire.decode``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:  # the client is imported only when an external registry is used
    from confluent_kafka.schema_registry import Schema

from hutong.errors import SchemaError
from schemas import catalog
from schemas.catalog import TOPICS, SchemaEntry, subject_for

__all__ = [
    "COMPATIBILITY",
    "EMBEDDED",
    "IdMap",
    "RegistryClient",
    "Reply",
    "Resolver",
    "register_all",
    "register_with",
    "resolver",
    "schema_by_id",
    "subject_version",
    "subject_versions",
    "subjects",
]

COMPATIBILITY = "BACKWARD"

_SUBJECTS: dict[str, SchemaEntry] = {
    subject_for(topic): catalog.for_topic(topic) for topic in TOPICS
}
_LATEST = ("latest", "-1")


class Reply(NamedTuple):
    """An HTTP status and a JSON-ready body of the registry read API."""

    status: int
    body: Any


def _error(status: int, error_code: int, message: str) -> Reply:
    return Reply(status, {"error_code": error_code, "message": message})


def schema_by_id(schema_id: int) -> Reply:
    """``GET /schemas/ids/{id}`` (the ``subject`` and ``format`` query parameters change nothing).

    The body has no ``schemaType``: a registry omits it for Avro, and clients default to AVRO.
    """
    try:
        entry = catalog.by_id(schema_id)
    except SchemaError:
        return _error(404, 40403, "Schema not found")
    return Reply(200, {"schema": entry.schema_str})


def subjects(prefix: str | None = None) -> Reply:
    """``GET /subjects``, optionally filtered by the ``subjectPrefix`` query parameter."""
    return Reply(200, sorted(s for s in _SUBJECTS if s.startswith(prefix or "")))


def subject_versions(subject: str) -> Reply:
    """``GET /subjects/{subject}/versions``: every subject has the one version 1."""
    if subject not in _SUBJECTS:
        return _error(404, 40401, "Subject not found")
    return Reply(200, [1])


def subject_version(subject: str, version: str) -> Reply:
    """``GET /subjects/{subject}/versions/{version}`` for ``latest``, ``-1`` or ``1``."""
    entry = _SUBJECTS.get(subject)
    if entry is None:
        return _error(404, 40401, "Subject not found")
    if version not in _LATEST and not version.isdigit():
        return _error(422, 42202, "The specified version is not a valid version id")
    if version not in (*_LATEST, "1"):
        return _error(404, 40402, "Version not found")
    body = {"subject": subject, "version": 1, "id": entry.schema_id, "schema": entry.schema_str}
    return Reply(200, body)


class RegistryClient(Protocol):
    """The two calls of confluent-kafka's ``SchemaRegistryClient`` that registration uses."""

    def register_schema(
        self, subject_name: str, schema: Schema, normalize_schemas: bool = False
    ) -> int: ...

    def set_compatibility(
        self, subject_name: str | None = None, level: str | None = None
    ) -> str: ...


def register_with(client: RegistryClient) -> dict[str, int]:
    """Register every topic's subject through ``client``; return subject -> schema id.

    Compatibility is set to BACKWARD per subject first, so a changed schema that old readers
    cannot read is refused; a refusal raises ``SchemaError`` naming the subject.
    """
    from confluent_kafka.schema_registry import Schema, SchemaRegistryError

    ids: dict[str, int] = {}
    for topic, name in TOPICS.items():
        subject = subject_for(topic)
        try:
            client.set_compatibility(subject, COMPATIBILITY)
            ids[subject] = client.register_schema(subject, Schema(catalog.schema(name).schema_str))
        except SchemaRegistryError as exc:
            raise SchemaError(
                f"schema registry refused subject {subject!r}: {exc.error_message} "
                f"(HTTP {exc.http_status_code}, code {exc.error_code})"
            ) from exc
    return ids


def register_all(url: str) -> dict[str, int]:
    """Register every topic's subject with the registry at ``url``; return subject -> id."""
    from confluent_kafka.schema_registry import SchemaRegistryClient

    with SchemaRegistryClient({"url": url}) as client:
        return register_with(client)


class IdMap:
    """Catalog entries carrying the ids an external registry gave their subjects.

    ``for_topic`` gives the entry to ``wire.encode`` with; ``by_id`` is the resolver for
    ``wire.decode``. In embedded mode the module ``schemas.catalog`` plays the same part.
    """

    def __init__(self, subject_ids: Mapping[str, int]) -> None:
        missing = sorted(set(_SUBJECTS) - set(subject_ids))
        if missing:
            raise SchemaError(f"no registry id for subjects {', '.join(missing)}")
        self._by_topic = {
            topic: replace(catalog.for_topic(topic), schema_id=subject_ids[subject_for(topic)])
            for topic in TOPICS
        }
        self._by_id = {entry.schema_id: entry for entry in self._by_topic.values()}

    def for_topic(self, topic: str) -> SchemaEntry:
        """The schema of ``topic``'s values, with the registry's id."""
        try:
            return self._by_topic[topic]
        except KeyError:
            raise SchemaError(f"topic {topic!r} is not in the topic catalog") from None

    def by_id(self, schema_id: int) -> SchemaEntry:
        """The entry the registry knows as ``schema_id``."""
        try:
            return self._by_id[schema_id]
        except KeyError:
            raise SchemaError(f"no schema with registry id {schema_id}") from None


class Resolver(Protocol):
    """Where the schema of a topic, and the schema behind an id, come from."""

    def for_topic(self, topic: str) -> SchemaEntry: ...

    def by_id(self, schema_id: int) -> SchemaEntry: ...


class _Embedded:
    """The catalog's own ids (embedded mode)."""

    def for_topic(self, topic: str) -> SchemaEntry:
        return catalog.for_topic(topic)

    def by_id(self, schema_id: int) -> SchemaEntry:
        return catalog.by_id(schema_id)


#: The resolver of embedded mode: the ids the hub serves on its own registry API.
EMBEDDED: Resolver = _Embedded()


def resolver(url: str | None) -> Resolver:
    """The catalog's ids, or, with an external registry, the ids it gives (registering first).

    Registering an unchanged schema again returns its existing id, so every process of a
    hub may call this at start-up.
    """
    return EMBEDDED if url is None else IdMap(register_all(url))
