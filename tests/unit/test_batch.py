"""Batch files split into messages; envelope counts are checked, not trusted."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from producers.hl7v2.files import parse_batch

MSG = "MSH|^~\\&|LIS|H1|HUTONG|R|20261122||ORU^R01|C{n}|P|2.4\rPID|1||M{n}\r"


def test_envelope_is_dropped_and_counts_checked() -> None:
    body = "FHS|^~\\&|LIS|H1\nBHS|^~\\&\n" + MSG.format(n=1).replace("\r", "\r\n") + \
        MSG.format(n=2) + "BTS|2\rFTS|1\r"
    batch = parse_batch(body.encode())
    assert [m.split(b"|")[9] for m in batch.messages] == [b"C1", b"C2"]
    assert all(m.endswith(b"\r") and b"\n" not in m for m in batch.messages)
    assert (batch.batches, batch.declared_messages, batch.declared_batches) == (1, 2, 1)
    assert batch.problems == []


def test_a_trailer_that_does_not_match_is_noted() -> None:
    batch = parse_batch(("BHS|^~\\&\r" + MSG.format(n=1) + "BTS|3\rFTS|2\r").encode())
    assert len(batch.messages) == 1
    assert batch.problems == ["batch trailers declare 3 messages; the file holds 1",
                              "file trailer declares 2 batches; the file holds 1"]


def test_plain_files_and_stray_segments() -> None:
    batch = parse_batch(("PID|stray\r" + MSG.format(n=1) + "\n\n" + MSG.format(n=2)).encode())
    assert len(batch.messages) == 2
    assert batch.problems == ["segments before the first MSH were skipped"]


@given(st.binary(max_size=2000))
def test_any_bytes_split_without_raising(data: bytes) -> None:
    batch = parse_batch(data)
    assert all(m.startswith(b"MSH") for m in batch.messages)
