"""``/api/v1/patients/{empi_id}/documents`` and ``/api/v1/documents/{id}``: 健康档案调阅.

Who may read what:

* Only callers with the ``clinician`` role read documents or a patient's index;
  analysts and admins are refused (403).
* Documents of a sensitive category (infectious disease, mental health) need
  ``clinician`` and ``sensitive``. A clinician without ``sensitive`` sees such a
  document in the index only as its id, type, time and facility (``sensitive:
  true``; the id is what asking for it de-identified needs), and may read it
  only de-identified: ``?deidentified=true``. Sensitive content never leaves
  otherwise.
* ``?deidentified=true`` works for any document, and the purpose
  ``research-deidentified`` makes every answer de-identified: documents, and
  index entries, which then leave out the EMPI id and the visit number.

A withdrawn document (its events no longer support it: every line cancelled,
the visit cancelled) is left out of the index unless ``include_withdrawn``;
read by id it is answered as stored, marked ``withdrawn`` (JSON) or by the
header ``X-Hutong-Withdrawn: true`` (CDA), so what was shown can be audited.

Purpose of use: the ``purpose`` query parameter or the ``X-Purpose-Of-Use``
header, one of `PURPOSES` (``treatment`` when neither is given); another value
is refused (400). It is recorded, and grants nothing beyond the roles.

Every read, allowed or refused, of an index or a document, is recorded in the
store's access audit (who, their roles, whose record, which document, when, why,
what they got, from where) before anything is answered; a read whose audit
record cannot be written fails. A request without a valid token (401) names no
one and is not recorded there. Nothing personal is logged.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response

from hutong.api.auth import caller
from hutong.errors import HutongError
from hutong.metrics import Metrics
from hutong.users import Principal
from producers.hl7v2.types import DEFAULT_TZ
from sinks.docstore.model import CDA_MEDIA_TYPE
from sinks.docstore.store import AccessRecord, DocumentStore, StoredDocument

__all__ = ["DEFAULT_PURPOSE", "DEIDENTIFIED_PURPOSES", "PURPOSES", "cda_text", "decide",
           "index_entry", "router"]

#: Purposes of use a caller may state (the audit keeps the one given).
PURPOSES = ("treatment", "emergency", "referral", "quality", "research-deidentified")
DEFAULT_PURPOSE = "treatment"
#: Purposes whose answers are always de-identified.
DEIDENTIFIED_PURPOSES = frozenset({"research-deidentified"})

Decision = Literal["allowed", "deidentified", "refused"]

#: Metadata a de-identified answer leaves out: they tie the document to the patient.
_IDENTIFYING = ("empi_id", "visit_number")
_NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
_DECLARED = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")


def decide(principal: Principal, *, sensitive: bool, deidentified: bool,
           purpose: str) -> Decision:
    """What ``principal`` gets of one document (see the module)."""
    if not principal.has("clinician"):
        return "refused"
    if deidentified or purpose in DEIDENTIFIED_PURPOSES:
        return "deidentified"
    if sensitive and not principal.has("sensitive"):
        return "refused"
    return "allowed"


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, frozenset):
        return sorted(value)
    return value


def _metadata(document: StoredDocument) -> dict[str, Any]:
    fields = [name for name in StoredDocument.__slots__ if name != "content"]
    entry = {name: _jsonable(getattr(document, name)) for name in fields}
    entry["sensitive"] = document.sensitive
    entry["withdrawn"] = document.withdrawn
    return entry


def index_entry(document: StoredDocument, principal: Principal, *,
                deidentified: bool = False) -> dict[str, Any]:
    """One index entry: registry metadata, or only type, time and facility of a sensitive
    document for a caller without the ``sensitive`` role; ``deidentified`` leaves out what
    ties it to the patient (EMPI id, visit number)."""
    if document.sensitive and not principal.has("sensitive"):
        return {"document_id": document.document_id, "type_code": document.type_code,
                "type_name": document.type_name,
                "effective_time": _jsonable(document.effective_time),
                "facility_id": document.facility_id, "sensitive": True}
    entry = _metadata(document)
    if deidentified:
        for name in _IDENTIFYING:
            entry.pop(name)
    return entry


def cda_text(content: bytes) -> str:
    """A CDA's text, read in the encoding its XML declaration names (UTF-8 otherwise)."""
    declared = _DECLARED.match(content)
    encoding = declared.group(1).decode("ascii") if declared else "utf-8-sig"
    try:
        return content.decode(encoding)
    except (LookupError, UnicodeDecodeError):
        return content.decode("utf-8", errors="replace")


def _deidentify(content: bytes) -> bytes:
    from sinks.docstore.assembly import deidentify

    return deidentify(content)


def store_of(request: Request) -> DocumentStore:
    """The document store this process has open, or 503."""
    store: DocumentStore | None = getattr(request.app.state, "documents", None)
    if store is None:
        raise HTTPException(503, "the document store is not open in this process")
    return store


class _Audit:
    """Records one request's reads in the access audit, and counts them."""

    def __init__(self, request: Request, principal: Principal, action: Literal["index", "read"],
                 purpose: str) -> None:
        self.store = store_of(request)
        self._metrics: Metrics | None = getattr(request.app.state, "metrics", None)
        self._principal = principal
        self._action = action
        self.purpose = purpose
        self._address = request.client.host if request.client else None

    def __call__(self, outcome: str, empi_id: str | None,
                 document_id: str | None = None) -> None:
        purpose = self.purpose if self.purpose in PURPOSES else "invalid"
        self.store.record_access(AccessRecord(
            principal=self._principal.name, roles=self._principal.roles, action=self._action,
            purpose=purpose, outcome=outcome, empi_id=empi_id, document_id=document_id,
            client_address=self._address))
        if self._metrics is not None:
            self._metrics.document_access.labels(self._action, outcome).inc()

    def check_purpose(self, empi_id: str | None, document_id: str | None = None) -> None:
        if self.purpose not in PURPOSES:
            self("bad-purpose", empi_id, document_id)
            raise HTTPException(400, f"purpose of use must be one of {', '.join(PURPOSES)}")


def _audit_for(action: Literal["index", "read"]) -> Callable[..., _Audit]:
    def make(request: Request, principal: Annotated[Principal, Depends(caller)],
             purpose: Annotated[str | None, Query(max_length=64,
                                                  description="Purpose of use.")] = None,
             x_purpose_of_use: Annotated[str | None, Header(max_length=64)] = None) -> _Audit:
        return _Audit(request, principal, action,
                      (purpose or x_purpose_of_use or DEFAULT_PURPOSE).strip().lower())

    return make


def _moment(value: dt.datetime | None) -> dt.datetime | None:
    """A time without an offset is read in the hub's zone (Asia/Shanghai)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=DEFAULT_TZ)


router = APIRouter(prefix="/api/v1", tags=["documents"])


@router.get("/patients/{empi_id}/documents")
def patient_documents(
    empi_id: str, principal: Annotated[Principal, Depends(caller)],
    audit: Annotated[_Audit, Depends(_audit_for("index"))],
    type_code: Annotated[str | None, Query(max_length=16, description="WS/T 500 C00xx.")]
    = None,
    facility: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[dt.datetime | None, Query(alias="from", description="Effective at or "
                                                "after (ISO; no offset: Asia/Shanghai).")]
    = None,
    until: Annotated[dt.datetime | None, Query(alias="to", description="Effective before.")]
    = None,
    include_replaced: bool = False,
    include_withdrawn: bool = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """A patient's documents (longitudinal index): registry metadata, never content."""
    audit.check_purpose(empi_id)
    if not principal.has("clinician"):
        audit("refused", empi_id)
        raise HTTPException(403, "reading patients' documents needs the role clinician")
    found = audit.store.index(empi_id, type_code=type_code, facility_id=facility,
                              since=_moment(since), until=_moment(until),
                              include_replaced=include_replaced,
                              include_withdrawn=include_withdrawn, limit=limit, offset=offset)
    deidentified = audit.purpose in DEIDENTIFIED_PURPOSES
    audit("deidentified" if deidentified else "allowed", empi_id)
    answer: dict[str, Any] = {} if deidentified else {"empi_id": empi_id}
    return answer | {"purpose": audit.purpose, "limit": limit, "offset": offset,
                     "documents": [index_entry(document, principal, deidentified=deidentified)
                                   for document in found]}


def _wants_cda(request: Request, fmt: str | None) -> bool:
    if fmt is not None:
        return fmt == "cda"
    accept = request.headers.get("accept", "").lower()
    return any(kind in accept for kind in (CDA_MEDIA_TYPE, "application/xml", "text/xml"))


@router.get("/documents/{document_id:path}", response_model=None)
def document(
    document_id: str, request: Request, response: Response,
    principal: Annotated[Principal, Depends(caller)],
    audit: Annotated[_Audit, Depends(_audit_for("read"))],
    fmt: Annotated[Literal["cda", "json"] | None, Query(alias="format")] = None,
    deidentified: bool = False,
) -> Response | dict[str, Any]:
    """One document version: the CDA (``Accept: application/hl7-cda+xml`` or
    ``?format=cda``) or its metadata with the CDA text (JSON, the default)."""
    stored = audit.store.get(document_id)
    empi_id = stored.empi_id if stored is not None else None
    audit.check_purpose(empi_id, document_id)
    if not principal.has("clinician"):
        audit("refused", empi_id, document_id)
        raise HTTPException(403, "reading patients' documents needs the role clinician")
    if stored is None or stored.content is None:
        audit("not-found", None, document_id)
        raise HTTPException(404, "no such document")
    decision = decide(principal, sensitive=stored.sensitive, deidentified=deidentified,
                      purpose=audit.purpose)
    if decision == "refused":
        audit("refused", empi_id, document_id)
        raise HTTPException(403, "this document is of a sensitive category: it needs the "
                                 "roles clinician and sensitive, or ask for it de-identified "
                                 "(?deidentified=true)")
    content = stored.content
    if decision == "deidentified":
        try:
            content = _deidentify(stored.content)
        except HutongError as exc:  # never the content instead
            audit("failed", empi_id, document_id)
            raise HTTPException(500, f"the document could not be de-identified ({exc}); it "
                                     "is not shown") from None
    audit(decision, empi_id, document_id)
    headers = {**_NO_STORE, "X-Hutong-Deidentified": str(decision == "deidentified").lower(),
               "X-Hutong-Withdrawn": str(stored.withdrawn).lower()}
    if _wants_cda(request, fmt):
        return Response(content, media_type=CDA_MEDIA_TYPE, headers=headers)
    answer = _metadata(stored)
    if decision == "deidentified":
        for name in _IDENTIFYING:
            answer.pop(name)
    answer["deidentified"] = decision == "deidentified"
    answer["content"] = cda_text(content)
    response.headers.update(headers)
    return answer
