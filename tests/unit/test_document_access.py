"""Who gets what of a document (hutong.api.documents), as plain functions over tables."""

from __future__ import annotations

import datetime as dt

import pytest

from hutong.api.documents import PURPOSES, cda_text, decide, index_entry
from hutong.users import Principal
from sinks.docstore.store import StoredDocument

CLINICIAN = Principal("dr.wang", frozenset({"clinician"}))
ELEVATED = Principal("dr.li", frozenset({"clinician", "sensitive"}))
ANALYST = Principal("li", frozenset({"analyst"}))
ADMIN = Principal("ops", frozenset({"admin", "analyst"}))
SENSITIVE_ONLY = Principal("odd", frozenset({"sensitive"}))


@pytest.mark.parametrize(("who", "sensitive", "deidentified", "purpose", "expected"), [
    (CLINICIAN, False, False, "treatment", "allowed"),
    (CLINICIAN, True, False, "treatment", "refused"),
    (CLINICIAN, True, True, "treatment", "deidentified"),
    (CLINICIAN, True, False, "emergency", "refused"),  # a purpose grants nothing
    (CLINICIAN, False, True, "treatment", "deidentified"),
    (CLINICIAN, False, False, "research-deidentified", "deidentified"),
    (ELEVATED, True, False, "treatment", "allowed"),
    (ELEVATED, True, False, "research-deidentified", "deidentified"),
    (ANALYST, False, False, "treatment", "refused"),
    (ANALYST, False, True, "research-deidentified", "refused"),
    (ADMIN, False, False, "treatment", "refused"),
    (SENSITIVE_ONLY, True, False, "treatment", "refused"),  # sensitive without clinician
])
def test_decide(who: Principal, sensitive: bool, deidentified: bool, purpose: str,
                expected: str) -> None:
    assert purpose in PURPOSES
    assert decide(who, sensitive=sensitive, deidentified=deidentified,
                  purpose=purpose) == expected


def stored(sensitivity: frozenset[str] = frozenset()) -> StoredDocument:
    when = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    return StoredDocument(
        document_id="1.2^D", set_id="1.2^S", version_number=1, replaces_document_id=None,
        replaced_by=None, kind="received", type_code="C0010", type_name="传染病报告",
        title="艾滋病随访", empi_id="E-1", facility_id="F001", effective_time=when,
        author_id="D-1", custodian_id=None, visit_number="V-1", confidentiality_code="R",
        sensitivity=sensitivity, content_type="text/xml", content_sha256="ab",
        stored_at=when)


def test_a_sensitive_entry_shows_only_type_time_and_facility_without_the_role() -> None:
    hidden = index_entry(stored(frozenset({"infectious-disease"})), CLINICIAN)
    assert hidden == {"document_id": "1.2^D", "type_code": "C0010", "type_name": "传染病报告",
                      "effective_time": "2026-03-01T00:00:00+00:00", "facility_id": "F001",
                      "sensitive": True}
    shown = index_entry(stored(frozenset({"infectious-disease"})), ELEVATED)
    assert shown["title"] == "艾滋病随访" and shown["sensitivity"] == ["infectious-disease"]
    assert "content" not in shown
    plain = index_entry(stored(), CLINICIAN)
    assert plain["title"] == "艾滋病随访" and plain["sensitive"] is False


@pytest.mark.parametrize(("content", "text"), [
    ('<?xml version="1.0" encoding="GB18030"?><a>张三</a>'.encode("gb18030"),
     '<?xml version="1.0" encoding="GB18030"?><a>张三</a>'),
    ("<a>张三</a>".encode(), "<a>张三</a>"),
    ("\ufeff<a>张三</a>".encode(), "<a>张三</a>"),
    (b'<?xml version="1.0" encoding="no-such-codec"?><a/>',
     '<?xml version="1.0" encoding="no-such-codec"?><a/>'),
])
def test_cda_text_reads_the_declared_encoding(content: bytes, text: str) -> None:
    assert cda_text(content) == text


def test_a_deidentified_index_entry_leaves_out_what_ties_it_to_the_patient() -> None:
    for principal in (CLINICIAN, ELEVATED):
        entry = index_entry(stored(), principal, deidentified=True)
        assert "empi_id" not in entry and "visit_number" not in entry
        assert entry["document_id"] == "1.2^D" and entry["title"] == "艾滋病随访"
    assert index_entry(stored(), CLINICIAN)["empi_id"] == "E-1"
