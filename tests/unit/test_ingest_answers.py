"""Which HTTP status each intake outcome becomes (connectors/http/ingest.py)."""

from __future__ import annotations

import json

import pytest

from connectors.http.ingest import _answer
from hutong.errors import HL7Error, ValidationError
from producers.intake import Receipt

BAD_VALUE = ValidationError("not a number", location="OBX[1]-5", code="102")


@pytest.mark.parametrize(("receipt", "status"), [
    (Receipt("AA", (), ("e1",), stored=True), 202),
    (Receipt("AA", (), ("e1",), stored=True, duplicate=True), 202),
    (Receipt("AE", (), (), "not a number", stored=True, error=BAD_VALUE), 422),
    (Receipt("AR", (), (), "unreadable", stored=True, error=HL7Error("unreadable", code="100")),
     400),
    (Receipt("AR", (), (), "reused", stored=True,
             error=ValidationError("reused", location="MSH-10", code="205")), 409),
    (Receipt("AR", (), (), "not authorised", unauthorised=True,
             error=HL7Error("not authorised", code="207")), 403),
    (Receipt("AE", (), (), "could not be stored", stored=False), 503),
])
def test_outcome_to_status(receipt: Receipt, status: int) -> None:
    response = _answer(receipt)
    assert response.status_code == status
    body = json.loads(bytes(response.body))
    assert body["outcome"] == receipt.code and body["duplicate"] is receipt.duplicate
    if status == 422:
        assert (body["location"], body["error_code"]) == ("OBX[1]-5", "102")
    if status == 503:
        assert response.headers["retry-after"] == "5"
