"""Chinese addresses split into province, city, district and the rest, for matching.

Registries write the same address many ways: with or without the province
(``北京市朝阳区…`` or ``朝阳区…``), with full-width digits, with spaces, with the
provincial capital's ``市`` and a county-level ``市`` in one line. :func:`parse_address`
reads the administrative levels by their suffixes (GB/T 2260 names end in 省,
自治区, 市, 州, 盟, 地区, 区, 县, 旗) and keeps the rest (street, road, village,
number) as one normalised string. It does not validate against the division
code list: a name it cannot place stays in ``rest``, which only costs a lower
match level, never a false one.

A line without hanzi (``8 Stanley St, Winston Hills NSW 4223``, a pinyin
address) has no suffixes to read: it is kept as its lower-case ASCII words and
numbers, in order, one space apart (``latin``), and compared by how many of
its words the other line shares (:mod:`streams.empi.compare`).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from producers.hl7v2.patient import is_hanzi
from streams.empi.names import to_simplified

__all__ = ["Address", "parse_address"]

_MUNICIPALITIES = ("北京", "上海", "天津", "重庆")
_PROVINCE = re.compile(r"^(.{2,7}?(?:省|自治区|特别行政区))")
# 广州市 is a city ending in 市, not 广 + 州: try the 市 reading first.
_CITY = re.compile(r"^(.{1,7}?市|.{1,7}?自治州|.{1,7}?地区|.{1,7}?盟|.{1,5}?州)")
_DISTRICT = re.compile(r"^(.{1,7}?(?:区|县|旗|市))(?!场|委|政府)")
_SHORT_PROVINCES = ("内蒙古", "广西", "西藏", "宁夏", "新疆", "香港", "澳门")
_NOISE = re.compile(r"[\s,，、;；:：()（）\-—#]+")
_LATIN_TOKENS = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True, slots=True)
class Address:
    """The levels found; None where the line does not say."""

    province: str | None
    city: str | None
    district: str | None
    #: Street, road, village, building and number, normalised (no spaces, ASCII digits);
    #: for a ``latin`` line, the whole line as words one space apart.
    rest: str
    #: A line without hanzi: no levels read, ``rest`` holds all of it.
    latin: bool = False


def _take(pattern: re.Pattern[str], text: str) -> tuple[str | None, str]:
    found = pattern.match(text)
    if found is None:
        return None, text
    return found[1], text[found.end():]


@lru_cache(maxsize=65536)
def parse_address(raw: str | None) -> Address | None:
    """The levels of an address line; None when it is empty."""
    if raw is None:
        return None
    normal = unicodedata.normalize("NFKC", raw)
    if not is_hanzi(normal):
        return _latin(normal)
    text = _NOISE.sub("", to_simplified(normal))
    if not text:
        return None
    province: str | None = None
    city: str | None = None
    for name in _MUNICIPALITIES:  # 北京市 is province and city at once
        if text.startswith(name):
            province = city = name + "市"
            text = text[len(name):].removeprefix("市")
            break
    else:
        province, text = _take(_PROVINCE, text)
        if province is None:
            for name in _SHORT_PROVINCES:
                if text.startswith(name):
                    province, text = name, text[len(name):]
                    break
        city, text = _take(_CITY, text)
    district, text = _take(_DISTRICT, text)
    return Address(_short(province), _short(city), district, text)


def _latin(line: str) -> Address | None:
    """A line without hanzi: its ASCII words and numbers, lower case, in order."""
    folded = unicodedata.normalize("NFKD", line.lower()).encode("ascii", "ignore").decode()
    tokens = _LATIN_TOKENS.findall(folded)
    if not tokens:
        return None
    return Address(None, None, None, " ".join(tokens), latin=True)


def _short(level: str | None) -> str | None:
    """``广东省`` and ``广东`` name the same province; compare them without the suffix."""
    if level is None:
        return None
    for name in _SHORT_PROVINCES:  # 新疆维吾尔自治区 -> 新疆
        if level.startswith(name):
            return name
    for suffix in ("特别行政区", "自治区", "省", "市"):
        if level.endswith(suffix) and len(level) > len(suffix) + 1:
            return level[: -len(suffix)]
    return level
