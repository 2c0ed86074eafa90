"""The HL7 v2 tokenizer: delimiters, fields, components, errors."""

from __future__ import annotations

import importlib

import hl7
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from hutong.errors import HL7Error
from producers.hl7v2.escape import Delimiters, escape
from producers.hl7v2.message import Message

MSH = ("MSH|^~\\&|LIS^1.2.156.1^ISO|RMYY^人民医院|HUTONG|QYPT|20240115093000||ORU^R01^ORU_R01"
       "|MSG0001|P|2.4|||AL|NE||UNICODE UTF-8")
PID = ("PID|1||P000123^^^RMYY^PI~11010519491231002X^^^GA^SFZH||张三^^^^^^L||19491231|M"
       "|||建国路1号^^北京市^北京市")
OBX = "OBX|1|NM|WBC^白细胞^L||6.5|10\\S\\9/L|3.5-9.5|H~A|||F"
TEXT = "\r".join((MSH, PID, "OBR|1|ORD1", OBX, "OBX|2|ST|NOTE||\"\"", "NTE|1||a&b"))


@pytest.fixture
def msg() -> Message:
    return Message.parse(TEXT)


def test_msh_numbering_quirk(msg: Message) -> None:
    msh = msg.msh
    assert msh.field(1) == "|"
    assert msh.field(2) == "^~\\&"
    assert msh.field(9) == "ORU^R01^ORU_R01"
    assert msh.get(1) == "|" and msh.get(2) == "^~\\&"
    assert msh.repetitions(2) == ["^~\\&"]


@pytest.mark.parametrize(
    ("prop", "value"),
    [
        ("message_type", "ORU"),
        ("trigger", "R01"),
        ("structure", "ORU_R01"),
        ("control_id", "MSG0001"),
        ("processing_id", "P"),
        ("version", "2.4"),
        ("sending_application", "LIS"),
        ("sending_facility", "RMYY"),
        ("receiving_application", "HUTONG"),
        ("receiving_facility", "QYPT"),
        ("accept_ack_type", "AL"),
        ("application_ack_type", "NE"),
        ("charset", "UNICODE UTF-8"),
    ],
)
def test_msh_properties(msg: Message, prop: str, value: str) -> None:
    assert getattr(msg, prop) == value


@pytest.mark.parametrize(
    ("segment", "args", "value"),
    [
        ("PID", (3,), "P000123"),
        ("PID", (3, 5), "PI"),
        ("PID", (3, 1, 2), "11010519491231002X"),
        ("PID", (3, 5, 2), "SFZH"),
        ("PID", (3, 5, 3), ""),  # no third repetition
        ("PID", (3, 9), ""),  # no ninth component
        ("PID", (5,), "张三"),
        ("PID", (11, 3), "北京市"),
        ("PID", (40,), ""),  # past the end
        ("OBX", (6,), "10^9/L"),  # unescaped
        ("OBX", (8, 1, 2), "A"),
        ("OBX", (1, 1, 1, 2), ""),  # no subcomponent
        ("NTE", (3, 1, 1, 2), "b"),
        ("MSH", (4, 2), "人民医院"),
    ],
)
def test_get(msg: Message, segment: str, args: tuple[int, ...], value: str) -> None:
    seg = msg.segment(segment)
    assert seg is not None
    assert seg.get(*args) == value


def test_hl7_null_reads_as_empty(msg: Message) -> None:
    second = msg.segments("OBX")[1]
    assert second.field(5) == '""'
    assert second.get(5) == ""


def test_segments_and_locations(msg: Message) -> None:
    assert [s.name for s in msg] == ["MSH", "PID", "OBR", "OBX", "OBX", "NTE"]
    obx = msg.segments("OBX")
    assert [s.index for s in obx] == [1, 2]
    assert obx[1].location(5) == "OBX[2]-5"
    assert msg.segments("PID")[0].location(3, 2) == "PID[1]-3[2]"
    assert msg.segment("ZZZ") is None and msg.segments("ZZZ") == []
    assert msg.segments("OBX")[0].repetitions(8) == ["H", "A"]
    assert msg.segments("OBX")[0].repetitions(9) == []


@pytest.mark.parametrize("ending", ["\r", "\n", "\r\n", "\n\r"])
def test_segment_terminators(ending: str) -> None:
    msg = Message.parse(ending.join((MSH, PID, OBX)) + ending)
    assert [s.name for s in msg] == ["MSH", "PID", "OBX"]


def test_line_feed_inside_a_field_is_kept() -> None:
    msg = Message.parse("\r".join((MSH, "OBX|1|TX|NOTE||line one\nline two||", "NTE|1")))
    assert [s.name for s in msg] == ["MSH", "OBX", "NTE"]
    obx = msg.segment("OBX")
    assert obx is not None and obx.get(5) == "line one\nline two"


def test_leading_bom_and_blank_lines_are_tolerated() -> None:
    assert Message.parse("\ufeff\r\n" + MSH).control_id == "MSG0001"


def test_other_delimiters() -> None:
    text = "MSH#!*$@#LIS#RMYY###20240115##ORU!R01#C9#P#2.3.1\rPID#1##A!!!X!PI*B!!!Y!SFZH"
    msg = Message.parse(text)
    assert msg.delimiters == Delimiters("#", "!", "*", "$", "@")
    assert (msg.message_type, msg.trigger, msg.version) == ("ORU", "R01", "2.3.1")
    pid = msg.segment("PID")
    assert pid is not None and pid.get(3, 5, 2) == "SFZH"


def test_hex_escapes_use_the_message_charset() -> None:
    msg = Message.parse(MSH + "\rNTE|1||\\XD5C5\\", charset="gb18030")
    nte = msg.segment("NTE")
    assert nte is not None and nte.get(3) == "张"


@pytest.mark.parametrize(
    ("text", "location"),
    [
        ("PID|1||X", "MSH"),
        ("", "MSH"),
        ("MSH|^~", "MSH-1"),
        ("MSHA^~\\&|X", "MSH-1"),
        ("MSH ^~\\&|X", "MSH-1"),
        ("MSH|^~|LIS|RMYY", "MSH-2"),  # too few encoding characters
        ("MSH|^^\\&|LIS|RMYY", "MSH-2"),  # repeated
        ("MSH|^~\\||LIS|RMYY", "MSH-2"),  # the field separator again
        ("MSH|^~\\&AB|LIS", "MSH-2"),  # too many
        ("MSH|^~A&|LIS|RMYY", "MSH-2"),  # a letter
    ],
)
def test_unreadable_headers(text: str, location: str) -> None:
    with pytest.raises(HL7Error) as caught:
        Message.parse(text)
    assert caught.value.location == location


def test_truncation_character_of_v27_is_accepted() -> None:
    msg = Message.parse("MSH|^~\\&#|LIS|RMYY|||20240115||ADT^A01|C1|P|2.7")
    assert (msg.message_type, msg.control_id) == ("ADT", "C1")


@pytest.mark.parametrize("text", [TEXT, TEXT.replace("\r", "\n")])
def test_fields_agree_with_python_hl7(text: str) -> None:
    ours = Message.parse(text)
    theirs = hl7.parse(text.replace("\n", "\r"))
    assert [s.name for s in ours] == [str(s[0]) for s in theirs]
    for mine, other in zip(ours, theirs, strict=True):
        for n in range(1, len(other)):
            assert mine.field(n) == str(other(n)), mine.location(n)
    assert ours.segments("PID")[0].get(3, 5, 2) == theirs["PID.F3.R2.C5"]


@given(st.lists(st.text(), min_size=1, max_size=4))
def test_escaped_values_read_back(values: list[str]) -> None:
    assume('""' not in values)
    field = "~".join("^".join((escape(v), "x")) for v in values)
    msg = Message.parse(f"{MSH}\rOBX|1|ST|CODE||{field}|after")
    obx = msg.segment("OBX")
    assert obx is not None
    assert [obx.get(5, 1, rep) for rep in range(1, len(values) + 1)] == values
    assert obx.get(6) == "after"


@pytest.mark.parametrize(
    "module",
    ["producers.hl7v2.escape", "producers.hl7v2.charset", "producers.hl7v2.message",
     "producers.hl7v2.types", "producers.hl7v2.patient", "producers.hl7v2.oru",
     "producers.hl7v2.ack", "producers.ids", "producers.idcard", "connectors.mllp.framing"],
)
def test_public_names_exist(module: str) -> None:
    imported = importlib.import_module(module)
    for name in imported.__all__:
        assert hasattr(imported, name), name
