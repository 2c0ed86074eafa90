"""The Confluent Schema Registry read API, served from the catalog (embedded mode).

A standard ``SchemaRegistryClient({'url': 'http://hub:8080'})`` with an
``AvroDeserializer`` decodes every hutong topic through these routes.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from schemas import registry

__all__ = ["router"]

router = APIRouter(tags=["schema registry"])
_MEDIA = "application/vnd.schemaregistry.v1+json"


def _reply(reply: registry.Reply) -> JSONResponse:
    return JSONResponse(reply.body, status_code=reply.status, media_type=_MEDIA)


@router.get("/schemas/ids/{schema_id}")
def schema_by_id(schema_id: int) -> JSONResponse:
    """The schema with this id."""
    return _reply(registry.schema_by_id(schema_id))


@router.get("/subjects")
def subjects(subjectPrefix: str | None = None) -> JSONResponse:
    """Every subject (``<topic>-value``)."""
    return _reply(registry.subjects(subjectPrefix))


@router.get("/subjects/{subject}/versions")
def subject_versions(subject: str) -> JSONResponse:
    """The versions of a subject."""
    return _reply(registry.subject_versions(subject))


@router.get("/subjects/{subject}/versions/{version}")
def subject_version(subject: str, version: str) -> JSONResponse:
    """One version (``latest``, ``-1`` or ``1``) of a subject."""
    return _reply(registry.subject_version(subject, version))
