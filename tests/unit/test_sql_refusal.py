"""What an analyst's SQL may do through the hub."""

from __future__ import annotations

import pytest

from hutong.api.sql import jsonable, refusal


@pytest.mark.parametrize("query", [
    "SELECT count() FROM hutong.lab_results",
    "  with x AS (SELECT 1) SELECT * FROM x;",
    "SHOW TABLES FROM hutong",
    "DESCRIBE TABLE hutong.lab_results",
    "EXPLAIN SELECT 1",
    pytest.param("SELECT 'a file(' AS s", marks=pytest.mark.xfail(
        strict=True, reason="the textual check errs on the safe side inside string literals")),
])
def test_reading_is_allowed(query: str) -> None:
    assert refusal(query) is None


@pytest.mark.parametrize(("query", "why"), [
    ("DROP TABLE hutong.lab_results", "read-only"),
    ("INSERT INTO hutong.lab_results VALUES (1)", "read-only"),
    ("SELECT 1; DROP TABLE x", "one statement"),
    ("SELECT * FROM file('/etc/passwd', 'LineAsString')", "table functions"),
    ("SELECT * FROM url('http://10.0.0.1/x', CSV)", "table functions"),
    ("SELECT * FROM s3 ('bucket')", "table functions"),
    ("SELECT * FROM remote('h', db.t)", "table functions"),
    ("SELECT 1 INTO   OUTFILE '/tmp/x'", "OUTFILE"),
    ("", "read-only"),
])
def test_writing_or_reaching_out_is_refused(query: str, why: str) -> None:
    reason = refusal(query)
    assert reason is not None and why in reason


def test_values_become_json() -> None:
    import datetime as dt

    assert jsonable([dt.date(2026, 1, 2), b"\xe6\xb5\x8b", {"k": (1, 2)}]) == \
        ["2026-01-02", "测", {"k": [1, 2]}]
