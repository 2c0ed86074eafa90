"""The Confluent wire format: golden bytes, encode refusals and decode errors.

The golden hex below was worked out by hand from the Avro spec, field by field: strings and
bytes are a zigzag varint length then the bytes, a union is the zigzag branch index (0 null,
1 the other) then the value, an array is block counts ending in 0, a double is 8 bytes
little-endian, ``timestamp-millis`` is a zigzag varint of milliseconds since the epoch and
``date`` a zigzag varint of days. If the framing, the schema or the field order changes,
these tests fail.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from hutong.errors import SchemaError, WireFormatError
from schemas import catalog, wire
from schemas.catalog import SchemaEntry

UTC = dt.UTC

DEAD_LETTER = {
    "dead_letter_id": "dl-1",
    "stage": "stream",
    "reason": "bad OBX-5",
    "error_code": "102",
    "location": None,
    "facility_id": "F01",
    "source_topic": "hutong.raw.hl7v2",
    "source_partition": 2,
    "source_offset": 300,
    "original_key": b"F01|M1",
    "payload": b"MSH|",
    "failed_at": dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC),
}

DEAD_LETTER_GOLDEN = bytes.fromhex(
    " ".join(
        [
            "00 0000000a",  # magic byte 0, schema id 10 (dead-letter) big-endian
            "08 646c2d31",  # dead_letter_id: length 4 -> zigzag 8, "dl-1"
            "0c 73747265616d",  # stage: length 6 -> 0x0c, "stream"
            "12 626164204f42582d35",  # reason: length 9 -> 0x12, "bad OBX-5"
            "02 06 313032",  # error_code: branch 1 (string), length 3, "102"
            "00",  # location: branch 0 (null)
            "02 06 463031",  # facility_id: "F01"
            "02 20 6875746f6e672e7261772e686c377632",  # source_topic: length 16
            "02 04",  # source_partition: int 2 -> zigzag 4
            "02 d804",  # source_offset: long 300 -> zigzag 600 = 0b100_1011000 -> d8 04
            "02 0c 4630317c4d31",  # original_key: 6 bytes "F01|M1"
            "08 4d53487c",  # payload: 4 bytes "MSH|"
            "d00f",  # failed_at: 1000 ms -> zigzag 2000 = 0b1111_1010000 -> d0 0f
        ]
    )
)

LAB_RESULT = {
    "event_id": "e1",
    "event_type": "lab-result",
    "facility_id": "F01",
    "source_system": None,
    "message_control_id": "M1",
    "source_patient_id": "P1",
    "empi_id": None,
    "occurred_at": None,
    "received_at": dt.datetime(2024, 1, 1, tzinfo=UTC),
    "patient": {
        "source_patient_id": "P1",
        "identifiers": [{"value": "P1", "type": "MR", "authority": None}],
        "id_card_number": None,
        "health_card_number": None,
        "name": None,
        "sex": "2",
        "phone": None,
        "address": None,
        "birth_date": dt.date(1970, 1, 11),
    },
    "quality_warnings": [],
    "map_version": None,
    "codes": [],
    "unmapped": [],
    "set_id": 1,
    "placer_order_number": None,
    "filler_order_number": None,
    "panel_code": None,
    "panel_name": None,
    "specimen_type": None,
    "specimen_collected_at": None,
    "test_code": "K",
    "test_name": "钾",
    "test_system": None,
    "value_type": "NM",
    "value": "6.8",
    "value_numeric": 6.8,
    "unit": "mmol/L",
    "reference_range": None,
    "abnormal_flags": ["HH"],
    "result_status": "F",
    "observed_at": None,
    "performing_lab": None,
    "standard_value": None,
    "standard_unit": None,
    "ordering_provider_id": None,
    "ordering_department": None,
    "visit_number": None,
    "patient_class": None,
    "practitioner_id": None,
    "practitioner_status": None,
}

PATIENT = LAB_RESULT["patient"]

LAB_RESULT_GOLDEN = bytes.fromhex(
    " ".join(
        [
            "00 00000004",  # magic byte, schema id 4 (lab-result)
            "04 6531",  # event_id "e1"
            "14 6c61622d726573756c74",  # event_type: length 10 -> 0x14, "lab-result"
            "06 463031",  # facility_id "F01"
            "00",  # source_system: null
            "02 04 4d31",  # message_control_id "M1"
            "04 5031",  # source_patient_id "P1"
            "00 00",  # empi_id, occurred_at: null
            # received_at 2024-01-01T00:00Z = 1704067200000 ms -> zigzag 3408134400000
            # = 0x00 + 0x50<<7 + 0x0f<<14 + 0x25<<21 + 0x18<<28 + 0x63<<35, 7 bits a byte:
            "80 d0 8f a5 98 63",
            "04 5031",  # patient.source_patient_id "P1"
            "02 04 5031 02 04 4d52 00 00",  # identifiers: 1 item {P1, MR, null}, end
            "00 00 00",  # id_card_number, health_card_number, name: null
            "02 02 32",  # sex "2"
            "00 00",  # phone, address: null
            "02 14",  # birth_date 1970-01-11: 10 days -> zigzag 20
            "00 00",  # quality_warnings: empty array; map_version: null
            "00 00",  # codes, unmapped: empty arrays
            "02",  # set_id: int 1 -> zigzag 2
            "00 00 00 00 00 00",  # placer_order_number .. specimen_collected_at: null
            "02 4b",  # test_code "K" (a plain string: length 1 -> 02)
            "02 06 e992be",  # test_name "钾": 3 UTF-8 bytes
            "00",  # test_system: null
            "04 4e4d",  # value_type "NM"
            "02 06 362e38",  # value "6.8"
            "02 3333333333331b40",  # value_numeric 6.8 = 0x401b333333333333, little-endian
            "02 0c 6d6d6f6c2f4c",  # unit "mmol/L"
            "00",  # reference_range: null
            "02 04 4848 00",  # abnormal_flags ["HH"]: 1 item, end
            "02 02 46",  # result_status "F"
            "00 00",  # observed_at, performing_lab: null
            "00 00 00 00 00 00",  # standard_value .. patient_class: null
            "00 00",  # practitioner_id, practitioner_status: null
        ]
    )
)


@pytest.mark.parametrize(
    ("name", "record", "golden"),
    [
        ("dead-letter", DEAD_LETTER, DEAD_LETTER_GOLDEN),
        ("lab-result", LAB_RESULT, LAB_RESULT_GOLDEN),
    ],
)
def test_golden_bytes(name: str, record: dict[str, object], golden: bytes) -> None:
    assert wire.encode(catalog.schema(name), record).hex(" ") == golden.hex(" ")
    entry, decoded = wire.decode(golden)
    assert entry.name == name
    assert decoded == record


def test_header_carries_the_entry_id() -> None:
    entry = replace(catalog.schema("dead-letter"), schema_id=0x01020304)
    assert wire.encode(entry, DEAD_LETTER)[:5] == bytes([0, 1, 2, 3, 4])


def test_timestamps_come_back_as_the_same_instant_in_utc() -> None:
    beijing = dt.timezone(dt.timedelta(hours=8))
    record = {**DEAD_LETTER, "failed_at": dt.datetime(1970, 1, 1, 8, 0, 1, tzinfo=beijing)}
    assert wire.encode(catalog.schema("dead-letter"), record) == DEAD_LETTER_GOLDEN
    _, decoded = wire.decode(DEAD_LETTER_GOLDEN)
    assert decoded["failed_at"].tzinfo == UTC


def test_missing_field_with_default_is_written_as_the_default() -> None:
    record = {key: value for key, value in LAB_RESULT.items() if key != "quality_warnings"}
    assert wire.encode(catalog.schema("lab-result"), record) == LAB_RESULT_GOLDEN


@pytest.mark.parametrize(
    ("change", "where", "expected"),
    [
        ({"set_id": "张三"}, "set_id", "expected int (integer), got str"),
        ({"set_id": 1.5}, "set_id", "expected int (integer), got float"),
        ({"set_id": True}, "set_id", "expected int (integer), got bool"),
        ({"set_id": 2**31}, "set_id", "expected int (integer), got int"),
        ({"value_numeric": "6.8"}, "value_numeric", "expected null or double, got str"),
        ({"abnormal_flags": "HH"}, "abnormal_flags", "expected an array (list), got str"),
        ({"test_code": None}, "test_code", "expected string, got None"),
        ({"received_at": dt.datetime(2024, 1, 1)}, "received_at", "got naive datetime"),
        ({"received_at": 1704067200000}, "received_at", "expected timezone-aware datetime"),
        (
            {"patient": {**PATIENT, "birth_date": dt.datetime(1990, 5, 1, tzinfo=UTC)}},
            "patient.birth_date",
            "expected null or date, got datetime",
        ),
        (
            {"patient": {**PATIENT, "identifiers": [{"value": 110105}]}},
            "patient.identifiers[0].value",
            "expected string, got int",
        ),
        ({"patient_name": "张三"}, "patient_name", "not a field of the schema"),
    ],
)
def test_a_record_that_does_not_fit_names_schema_and_path_but_not_the_value(
    change: dict[str, object], where: str, expected: str
) -> None:
    with pytest.raises(SchemaError) as caught:
        wire.encode(catalog.schema("lab-result"), {**LAB_RESULT, **change})
    message = str(caught.value)
    assert f"schema 'lab-result' at {where}:" in message
    assert expected in message
    for secret in ("张三", "110105", "6.8", "1704067200000", "1990"):
        assert secret not in message


def test_a_missing_required_field_is_named() -> None:
    record = {key: value for key, value in LAB_RESULT.items() if key != "test_code"}
    with pytest.raises(SchemaError, match="at test_code: missing, and the schema gives no default"):
        wire.encode(catalog.schema("lab-result"), record)


def test_a_string_that_cannot_be_utf8_is_refused_without_its_value() -> None:
    with pytest.raises(SchemaError, match=r"schema 'dead-letter': Avro writer failed") as caught:
        wire.encode(catalog.schema("dead-letter"), {**DEAD_LETTER, "reason": "bad \ud800"})
    assert "bad" not in str(caught.value)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "0 bytes is shorter than the 5-byte wire-format header"),
        (bytes.fromhex("00000000"), "4 bytes is shorter than the 5-byte"),
        (b"\x01" + DEAD_LETTER_GOLDEN[1:], "magic byte at offset 0 is 0x01, expected 0"),
        (bytes.fromhex("000000006308"), "unknown schema id 99 at offset 1"),
        (bytes.fromhex("0000000010"), "body does not decode as schema 'alert-ack' (id 16)"),
        (DEAD_LETTER_GOLDEN[:-2], "EOFError near offset"),
        (LAB_RESULT_GOLDEN + b"\x00", "1 bytes left over after the 'lab-result'"),
        (bytes.fromhex("00000000100462ff"), "UnicodeDecodeError"),  # alert_id: bad UTF-8
    ],
)
def test_decode_errors_name_the_offset_or_reason(data: bytes, reason: str) -> None:
    with pytest.raises(WireFormatError) as caught:
        wire.decode(data)
    assert reason in str(caught.value)


def test_decode_uses_the_given_resolver() -> None:
    def resolve(schema_id: int) -> SchemaEntry:
        assert schema_id == 10
        return catalog.schema("dead-letter")

    entry, _ = wire.decode(DEAD_LETTER_GOLDEN, resolve)
    assert entry.name == "dead-letter"


def test_an_unchecked_encode_still_refuses_a_record_that_does_not_fit() -> None:
    entry = catalog.schema("lab-result")
    assert wire.encode(entry, LAB_RESULT, checked=False) == LAB_RESULT_GOLDEN
    with pytest.raises(SchemaError, match="Avro writer failed"):
        wire.encode(entry, {**LAB_RESULT, "set_id": "one"}, checked=False)
