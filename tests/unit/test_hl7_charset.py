"""MSH-18 to codecs, and message bytes to text (UTF-8 and GB18030)."""

from __future__ import annotations

import pytest

from hutong.errors import HL7Error
from producers.hl7v2.charset import codec_for, decode_message, detect_charset


def msh(charset: str, facility: str = "RMYY") -> str:
    return (f"MSH|^~\\&|LIS|{facility}|HUTONG|QYPT|20240115093000||ORU^R01^ORU_R01|M1|P|2.4"
            f"|||||CHN|{charset}")


BODY = "\rPID|1||P001^^^RMYY^PI||张三||19800101|M\r"


@pytest.mark.parametrize(
    ("name", "codec"),
    [
        ("UNICODE UTF-8", "utf-8"),
        ("UTF-8", "utf-8"),
        ("utf8", "utf-8"),
        ("GB 18030-2000", "gb18030"),
        ("GB18030", "gb18030"),
        ("GBK", "gb18030"),  # decoded as its superset
        ("GB2312", "gb18030"),
        ("ASCII", "ascii"),
        ("8859/1", "iso-8859-1"),
        ("ISO IR100", "iso-8859-1"),
        ("", "utf-8"),
    ],
)
def test_codec_for(name: str, codec: str) -> None:
    assert codec_for(name) == codec


@pytest.mark.parametrize("name", ["UNICODE", "EBCDIC", "KOI8", "UNICODE UTF-32"])
def test_unknown_charset_is_table_value_not_found(name: str) -> None:
    with pytest.raises(HL7Error) as caught:
        codec_for(name)
    assert (caught.value.code, caught.value.location) == ("103", "MSH-18")


@pytest.mark.parametrize(
    ("raw", "codec"),
    [
        ((msh("UNICODE UTF-8") + BODY).encode("utf-8"), "utf-8"),
        ((msh("GB 18030-2000") + BODY).encode("gb18030"), "gb18030"),
        ((msh("") + BODY).encode("utf-8"), "utf-8"),
        ((msh("") + BODY).encode("gb18030"), "gb18030"),  # not UTF-8: the fallback
        ((msh("") + "\rPID|1||P001").encode("ascii"), "utf-8"),
        (b"\xef\xbb\xbf" + msh("GB18030").encode("ascii"), "gb18030"),  # BOM before MSH
        ((msh("GB18030~UNICODE UTF-8") + BODY).encode("gb18030"), "gb18030"),  # first wins
        (b"not a message \xd5\xc5", "gb18030"),
    ],
)
def test_detect_charset(raw: bytes, codec: str) -> None:
    assert detect_charset(raw) == codec


def test_msh_with_gbk_trail_byte_equal_to_the_field_separator() -> None:
    # 億 is 0x83 0x7C and 區 0x85 0x5E in GB18030: a byte-level split on "|" or "^"
    # would read MSH-17 (CHN) as MSH-18.
    raw = (msh("GB18030", facility="億康區卫生院") + BODY).encode("gb18030")
    assert b"\x83|" in raw and b"\x85^" in raw
    assert detect_charset(raw) == "gb18030"
    text, codec = decode_message(raw)
    assert codec == "gb18030" and "億康區卫生院" in text and "张三" in text


@pytest.mark.parametrize("charset", ["GB 18030-2000", ""])
def test_decode_gb18030_message(charset: str) -> None:
    text, codec = decode_message((msh(charset) + BODY).encode("gb18030"))
    assert codec == "gb18030"
    assert text == msh(charset) + BODY


def test_decode_drops_utf8_bom() -> None:
    text, codec = decode_message(b"\xef\xbb\xbf" + (msh("") + BODY).encode("utf-8"))
    assert (text[:3], codec) == ("MSH", "utf-8")


def test_bytes_invalid_in_declared_charset() -> None:
    raw = (msh("UNICODE UTF-8") + BODY).encode("gb18030")
    with pytest.raises(HL7Error) as caught:
        decode_message(raw)
    error = caught.value
    assert (error.code, error.location) == ("102", "MSH-18")
    assert "segment PID" in error.reason and "utf-8" in error.reason
    assert "张" not in str(error)


def test_bytes_invalid_in_every_fallback() -> None:
    with pytest.raises(HL7Error) as caught:
        decode_message((msh("") + "\rOBX|1|ST|X||").encode("ascii") + b"\xff\xff")
    assert "segment OBX" in caught.value.reason
