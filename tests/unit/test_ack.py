"""ACKs as golden strings: AA (v2.4), AE with ERR-1 (v2.4) and ERR-2/3 (v2.5)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hutong.errors import HL7Error, ValidationError
from producers.hl7v2.ack import build_ack, build_ack_for_unparseable
from producers.hl7v2.message import Message

NOW = datetime(2024, 1, 15, 1, 30, 5, tzinfo=UTC)  # 09:30:05 in Beijing

V24 = ("MSH|^~\\&|LIS^1.2.3^ISO|RMYY|HUTONG|QYPT|20240115093000||ORU^R01^ORU_R01|MSG0001|P"
       "|2.4|||AL|NE|CHN|GB 18030-2000\rPID|1||P1")
V251 = ("MSH|^~\\&|LIS|XYY|HUTONG|QYPT|20240520143000||ORU^R01^ORU_R01|M251|P|2.5.1"
        "|||NE|AL||UNICODE UTF-8\rPID|1||P1")
V23 = "MSH|^~\\&|LIS|SQ|HUTONG|QYPT|20240301||ORU^R01|M23|T|2.3\rPID|1||P1"

MSH_V24_ACK = ("MSH|^~\\&|HUTONG|QYPT|LIS^1.2.3^ISO|RMYY|20240115093005+0800||ACK^R01^ACK"
               "|ACK0000000001|P|2.4||||||GB 18030-2000")
OBX_ERROR = ValidationError("not a number (NM)", location="OBX[3]-5", code="102")


def ack(message: str, code: str, **kwargs: object) -> list[str]:
    result = build_ack(Message.parse(message), code, control_id="ACK0000000001", now=NOW,
                       **kwargs)  # type: ignore[arg-type]
    assert "\n" not in result and result.endswith("\r")  # every segment ends in CR
    return result[:-1].split("\r")


def test_aa_v24() -> None:
    assert ack(V24, "AA") == [MSH_V24_ACK, "MSA|AA|MSG0001"]


def test_ae_v24_uses_err1() -> None:
    assert ack(V24, "AE", error=OBX_ERROR) == [
        MSH_V24_ACK,
        "MSA|AE|MSG0001|not a number (NM)",
        "ERR|OBX^3^5^102&Data type error&HL70357",
    ]


def test_ae_v251_uses_err2_and_err3() -> None:
    assert ack(V251, "AE", error=OBX_ERROR) == [
        "MSH|^~\\&|HUTONG|QYPT|LIS|XYY|20240115093005+0800||ACK^R01^ACK|ACK0000000001|P|2.5.1"
        "||||||UNICODE UTF-8",
        "MSA|AE|M251|not a number (NM)",
        "ERR||OBX^3^5|102^Data type error^HL70357|E|||not a number (NM)",
    ]


@pytest.mark.parametrize(
    ("location", "err24", "err25"),
    [
        ("PID[1]-3[2]", "PID^1^3^101", "PID^1^3^2"),
        ("MSH-10", "MSH^1^10^101", "MSH^1^10"),
        ("PID", "PID^^^101", "PID"),
        ("OBR[2]", "OBR^2^^101", "OBR^2"),
        (None, "^^^101", ""),
        ("MLLP", "^^^101", ""),  # not a segment location
    ],
)
def test_error_locations(location: str | None, err24: str, err25: str) -> None:
    error = ValidationError("required field missing", location=location, code="101")
    assert ack(V24, "AE", error=error)[2] == (
        f"ERR|{err24}&Required field missing&HL70357")
    assert ack(V251, "AE", error=error)[2].split("|")[2] == err25


def test_v23_has_two_component_message_type() -> None:
    msh = ack(V23, "AA")[0]
    assert msh.split("|")[8:12] == ["ACK^R01", "ACK0000000001", "T", "2.3"]


def test_text_with_delimiters_is_escaped() -> None:
    lines = ack(V24, "AR", text="bad MSH-9: ORU^R99 | see log\nline 2")
    assert lines[1] == "MSA|AR|MSG0001|bad MSH-9: ORU\\S\\R99 \\F\\ see log\\.br\\line 2"
    assert Message.parse("\r".join(lines)).segments("MSA")[0].get(3) == (
        "bad MSH-9: ORU^R99 | see log\nline 2")


def test_explicit_text_wins_over_the_error_reason() -> None:
    assert ack(V24, "AE", text="resend", error=OBX_ERROR)[1] == "MSA|AE|MSG0001|resend"


def test_accepting_codes_never_carry_err() -> None:
    assert len(ack(V24, "CA", error=OBX_ERROR)) == 2


def test_ack_uses_the_message_delimiters() -> None:
    text = "MSH#!*$@#LIS#RMYY#HUTONG#QYPT#20240115##ORU!R01#C9#P#2.4\rPID#1##A"
    lines = build_ack(Message.parse(text), "AE", text="a#b", error=OBX_ERROR,
                      control_id="K1", now=NOW).split("\r")
    assert lines[0].startswith("MSH#!*$@#HUTONG#QYPT#LIS#RMYY#")
    assert lines[1] == "MSA#AE#C9#a$F$b"
    assert lines[2] == "ERR#OBX!3!5!102@Data type error@HL70357"


def test_unknown_code_is_refused() -> None:
    with pytest.raises(ValueError, match="acknowledgement code"):
        ack(V24, "OK")


def test_ack_without_a_message() -> None:
    text = build_ack(None, "AR", error=HL7Error("no MSH", location="MSH", code="100"),
                     control_id="K2", now=NOW)
    assert text.rstrip("\r").split("\r") == [
        "MSH|^~\\&|||||20240115093005+0800||ACK^^ACK|K2|P|2.4",
        "MSA|AR||no MSH",
        "ERR|MSH^^^100&Segment sequence error&HL70357",
    ]


def test_unparseable_scrapes_msh10() -> None:
    raw = "MSH|^^^^|LIS|RMYY|HUTONG|QYPT|20240115||ORU^R01|CTL9|P|2.5.1\rPID|1"
    error = HL7Error("MSH-2 must hold four distinct encoding characters", location="MSH-2")
    assert build_ack_for_unparseable(raw, "AR", error, "K3", NOW).rstrip("\r").split("\r") == [
        "MSH|^~\\&|HUTONG|QYPT|LIS|RMYY|20240115093005+0800||ACK^R01^ACK|K3|P|2.5.1",
        "MSA|AR|CTL9|MSH-2 must hold four distinct encoding characters",
        "ERR||MSH^1^2|102^Data type error^HL70357|E|||"
        "MSH-2 must hold four distinct encoding characters",
    ]


@pytest.mark.parametrize("raw", ["", "garbage \x00 bytes", "PID|1||X", "MSH"])
def test_unparseable_without_msh(raw: str) -> None:
    error = HL7Error("message does not start with an MSH segment", location="MSH", code="100")
    lines = build_ack_for_unparseable(raw, "AR", error, "K4", NOW).split("\r")
    assert lines[0] == "MSH|^~\\&|||||20240115093005+0800||ACK^^ACK|K4|P|2.4"
    assert lines[1].startswith("MSA|AR||")


def test_unparseable_scraped_values_are_escaped() -> None:
    raw = "MSH#bad#A|B#RMYY#####X#C|9"
    lines = build_ack_for_unparseable(raw, "AR", None, "K5", NOW).split("\r")
    assert lines[1] == "MSA|AR|C\\F\\9"
    assert lines[0].split("|")[4:7] == ["A\\F\\B", "RMYY", "20240115093005+0800"]
