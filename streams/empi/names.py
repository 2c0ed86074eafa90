"""Personal names for matching: hanzi, pinyin, surname and given name.

A name arrives as the facility wrote it: ``张三``, ``張三`` (traditional),
``张 三``, ``Zhang San``, ``ZHANG^SAN`` already joined by the adapter, or
``San Zhang`` in Western order. :func:`parse_name` turns each into a
:class:`Name`: the simplified hanzi (when the name is hanzi), and the pinyin of
the surname and of the given name, toneless and lower case, so that the
comparators can tell an exact match from a homophone typed by an input method
(张/章), a traditional variant, a Latin spelling, or swapped order.

The surname is the first character, or the first two when they are a compound
surname (欧阳, 司马, 诸葛, ...). Surnames whose reading differs from the
character's usual one (单 Shan, 曾 Zeng, 解 Xie, 区 Ou, ...) take the surname
reading. Minority names written with a middle dot (阿依古丽·买买提) keep their
parts in order, without the dot.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import opencc
from pypinyin import Style, lazy_pinyin

from producers.hl7v2.patient import is_hanzi

__all__ = ["COMPOUND_SURNAMES", "Name", "parse_name", "to_simplified"]

#: Two-character surnames (复姓) common enough to meet in a regional registry.
COMPOUND_SURNAMES = frozenset({
    "欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "宇文",
    "司徒", "夏侯", "轩辕", "令狐", "钟离", "澹台", "单于", "万俟", "呼延", "端木", "南宫",
    "西门", "百里", "东郭", "独孤", "太史", "申屠", "公冶", "闻人", "濮阳", "淳于", "赫连",
    "第五", "左丘", "谷梁", "拓跋", "司空", "亓官", "壤驷", "羊舌", "梁丘", "夹谷", "宗政",
})

#: Surname readings that differ from the character's most common reading.
SURNAME_READINGS = {
    "单": "shan", "曾": "zeng", "解": "xie", "仇": "qiu", "朴": "piao", "区": "ou",
    "查": "zha", "乐": "yue", "盖": "ge", "缪": "miao", "翟": "zhai", "覃": "qin",
    "任": "ren", "沈": "shen", "柏": "bai", "种": "chong", "召": "shao", "秘": "bi",
    "宁": "ning", "折": "she", "员": "yun", "祭": "zhai", "莘": "shen", "长孙": "zhangsun",
    "尉迟": "yuchi", "万俟": "moqi", "单于": "chanyu", "令狐": "linghu", "澹台": "tantai",
}

_LATIN = re.compile(r"[a-z]+")
_SEPARATORS = re.compile(r"[\s·•・.\-_^,，、/]+")


@dataclass(frozen=True, slots=True)
class Name:
    """A name ready to compare."""

    #: Simplified hanzi without separators, or the Latin tokens joined by one space.
    text: str
    hanzi: bool
    #: Toneless lower-case pinyin (ü as v) of the surname and of the given name.
    surname: str
    given: str

    @property
    def pinyin(self) -> str:
        """Surname then given name, no spaces: ``zhangsan``."""
        return self.surname + self.given

    @property
    def swapped(self) -> str:
        """Given name then surname: how a Western-order Latin spelling reads."""
        return self.given + self.surname


@lru_cache(maxsize=1)
def _converter() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    """Traditional characters to simplified (張 -> 张); other text unchanged."""
    return str(_converter().convert(text))


def _pinyin(hanzi: str) -> str:
    return "".join(lazy_pinyin(hanzi, style=Style.NORMAL, v_to_u=False, errors="ignore"))


def _split_surname(hanzi: str) -> tuple[str, str]:
    if len(hanzi) > 2 and hanzi[:2] in COMPOUND_SURNAMES:
        return hanzi[:2], hanzi[2:]
    return hanzi[:1], hanzi[1:]


@lru_cache(maxsize=65536)
def parse_name(raw: str | None) -> Name | None:
    """The comparable form of a name as sent; None when there is nothing to compare."""
    if raw is None:
        return None
    cleaned = unicodedata.normalize("NFKC", raw).strip()
    parts = [p for p in _SEPARATORS.split(cleaned) if p]
    if not parts:
        return None
    joined = to_simplified("".join(parts))
    if is_hanzi(joined):
        surname, given = _split_surname(joined)
        surname_py = SURNAME_READINGS.get(surname) or _pinyin(surname)
        return Name(joined, True, surname_py, _pinyin(given))
    tokens = _LATIN.findall(unicodedata.normalize("NFKD", " ".join(parts).lower())
                            .encode("ascii", "ignore").decode())
    if not tokens:
        return None
    # A Latin name is taken surname first, as Chinese registries write pinyin; the
    # comparator also tries the swapped order.
    return Name(" ".join(tokens), False, tokens[0], "".join(tokens[1:]))
