"""Built-in code tables: what hutong translates without any facility map.

Facts from the reference ``cn-standards.md`` §3; a facility map of the same
kind overrides every row (:mod:`.translate` asks the maps first).

====================  =============  =======================================================
kind                  target system  accepted as sent (case and full-width forms ignored)
====================  =============  =======================================================
``sex``               GB/T 2261.1    its codes 0 1 2 9; HL7 table 0001; 男 女 男性 女性 未知
``marital-status``    GB/T 2261.2    its codes 10-90; HL7 table 0002 (clear rows); words
``ethnicity``         GB 3304        codes 01-56; names, with and without 族
``id-document-type``  CV02.01.101    codes 01-07, 99; CX-5 SFZH NI ID, HZ PPN, DL; words
====================  =============  =======================================================

Choices where the standards do not line up one to one (change them here, and
bump :data:`TABLES_VERSION`):

* HL7 sex ``U`` (unknown) is GB/T 2261.1 ``0`` 未知的性别; ``O`` other, ``A``
  ambiguous and ``N`` not applicable are ``9`` 未说明的性别 (GB/T 2261.1 has
  no finer row).
* HL7 marital ``A`` separated and ``E`` legally separated are ``20`` 已婚 (a
  separation does not end a marriage); ``B`` unmarried is ``10``; ``U``
  unknown and ``T`` unreported are ``90``. Rows with no GB/T 2261.2
  counterpart (``C`` common law, ``G`` living together, ``P``/``R`` domestic
  partner, ``N`` annulled, ``I`` interlocutory, ``O`` other) are left out, so
  they show up as unmapped until a facility maps them.
* GB 3304 ``97``/``98`` (其他, 外国血统中国籍人士) are left out: the reference
  marks them UNVERIFIED. A facility whose PID-22 holds local numbers (``17``
  for 汉族 is seen in practice, which is 哈萨克族 in GB 3304) must load an
  ``ethnicity`` map; it overrides this table.
* An identifier typed ``SFZH``, ``NI`` or ``ID`` is a 居民身份证 (``01``), as
  the HL7 adapter's default profile reads them; ``PPN``/``HZ`` a 护照 (``03``);
  HL7 ``DL`` a 驾驶证 (``05``).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from streams.terminology.maps import ETHNICITY, ID_DOCUMENT_TYPE, MARITAL_STATUS, SEX

__all__ = [
    "BUILTIN_TABLES",
    "BUILTIN_VERSION",
    "CV02_01_101",
    "ETHNICITY_TABLE",
    "GB3304",
    "GBT2261_1",
    "GBT2261_2",
    "ICD10_CN",
    "ID_DOCUMENT_TABLE",
    "LOINC",
    "MARITAL_TABLE",
    "SEX_TABLE",
    "TABLES_VERSION",
    "UCUM",
    "BuiltinTable",
    "normal_form",
]

#: The date of the built-in tables (this module and the unit table of :mod:`.units`).
#: Change it with any row, so replayed events show they were translated differently.
TABLES_VERSION = "2026-12-05"
#: How events name the built-in tables in their ``map_version``.
BUILTIN_VERSION = f"builtin-{TABLES_VERSION}"

LOINC = "LOINC"
GBT2261_1 = "GB/T 2261.1"
GBT2261_2 = "GB/T 2261.2"
GB3304 = "GB 3304"
CV02_01_101 = "CV02.01.101"
ICD10_CN = "ICD-10 国家临床版 2.0"
UCUM = "UCUM"


@lru_cache(maxsize=8192)
def normal_form(raw: str) -> str:
    """How a sent code is compared with a table: NFKC (full-width to ASCII), stripped, upper."""
    return unicodedata.normalize("NFKC", raw).strip().upper()


@dataclass(frozen=True)
class BuiltinTable:
    """One standard table: its codes with displays, and what else is accepted for each."""

    kind: str
    system: str
    #: code -> display, as the standard prints them.
    codes: Mapping[str, str]
    #: another spelling -> code (codes themselves need not be listed).
    aliases: Mapping[str, str] = field(default_factory=dict)
    _index: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index = {normal_form(code): code for code in self.codes}
        for alias, code in self.aliases.items():
            if code not in self.codes:
                raise ValueError(f"{self.system}: alias {alias!r} names unknown code {code!r}")
            index[normal_form(alias)] = code
        object.__setattr__(self, "_index", index)

    def lookup(self, raw: str) -> tuple[str, str] | None:
        """(code, display) for a value as sent, or None when the table does not know it."""
        code = self._index.get(normal_form(raw))
        return None if code is None else (code, self.codes[code])

    def display(self, code: str) -> str | None:
        """The display of one of the table's own codes."""
        return self.codes.get(code)


SEX_TABLE = BuiltinTable(SEX, GBT2261_1, {
    "0": "未知的性别", "1": "男性", "2": "女性", "9": "未说明的性别",
}, {
    # HL7 table 0001
    "M": "1", "F": "2", "U": "0", "O": "9", "A": "9", "N": "9",
    # words
    "男": "1", "男性": "1", "女": "2", "女性": "2", "未知": "0", "未知的性别": "0",
    "未说明": "9", "未说明的性别": "9", "MALE": "1", "FEMALE": "2", "UNKNOWN": "0",
})

MARITAL_TABLE = BuiltinTable(MARITAL_STATUS, GBT2261_2, {
    "10": "未婚", "20": "已婚", "21": "初婚", "22": "再婚", "23": "复婚", "30": "丧偶",
    "40": "离婚", "90": "未说明的婚姻状况",
}, {
    # HL7 table 0002, the rows with a clear GB/T 2261.2 counterpart
    "S": "10", "B": "10", "M": "20", "A": "20", "E": "20", "W": "30", "D": "40",
    "U": "90", "T": "90",
    # words
    "未婚": "10", "已婚": "20", "初婚": "21", "再婚": "22", "复婚": "23", "丧偶": "30",
    "离婚": "40", "离异": "40", "未说明": "90", "未说明的婚姻状况": "90", "未知": "90",
})

#: GB 3304-1991 codes 01-56, laid out as in reference §3.3 (read down each column).
_ETHNIC_CODES = {
    "01": "汉族",       "16": "哈尼族",     "31": "达斡尔族",   "46": "德昂族",
    "02": "蒙古族",     "17": "哈萨克族",   "32": "仫佬族",     "47": "保安族",
    "03": "回族",       "18": "傣族",       "33": "羌族",       "48": "裕固族",
    "04": "藏族",       "19": "黎族",       "34": "布朗族",     "49": "京族",
    "05": "维吾尔族",   "20": "傈僳族",     "35": "撒拉族",     "50": "塔塔尔族",
    "06": "苗族",       "21": "佤族",       "36": "毛南族",     "51": "独龙族",
    "07": "彝族",       "22": "畲族",       "37": "仡佬族",     "52": "鄂伦春族",
    "08": "壮族",       "23": "高山族",     "38": "锡伯族",     "53": "赫哲族",
    "09": "布依族",     "24": "拉祜族",     "39": "阿昌族",     "54": "门巴族",
    "10": "朝鲜族",     "25": "水族",       "40": "普米族",     "55": "珞巴族",
    "11": "满族",       "26": "东乡族",     "41": "塔吉克族",   "56": "基诺族",
    "12": "侗族",       "27": "纳西族",     "42": "怒族",
    "13": "瑶族",       "28": "景颇族",     "43": "乌孜别克族",
    "14": "白族",       "29": "柯尔克孜族", "44": "俄罗斯族",
    "15": "土家族",     "30": "土族",       "45": "鄂温克族",
}

ETHNICITY_TABLE = BuiltinTable(ETHNICITY, GB3304, _ETHNIC_CODES, {
    **{name: code for code, name in _ETHNIC_CODES.items()},
    **{name.removesuffix("族"): code for code, name in _ETHNIC_CODES.items()},
})

ID_DOCUMENT_TABLE = BuiltinTable(ID_DOCUMENT_TYPE, CV02_01_101, {
    "01": "居民身份证", "02": "居民户口簿", "03": "护照", "04": "军官证", "05": "驾驶证",
    "06": "港澳居民来往内地通行证", "07": "台湾居民来往内地通行证", "99": "其他法定有效证件",
}, {
    # CX-5 identifier types
    "SFZH": "01", "NI": "01", "ID": "01", "PPN": "03", "HZ": "03", "DL": "05",
    # words
    "身份证": "01", "居民身份证": "01", "户口簿": "02", "户口本": "02", "居民户口簿": "02",
    "护照": "03", "军官证": "04", "驾驶证": "05", "港澳通行证": "06",
    "港澳居民来往内地通行证": "06", "台湾通行证": "07", "台胞证": "07",
    "台湾居民来往内地通行证": "07", "其他法定有效证件": "99",
})

#: The built-in table of each kind that has one.
BUILTIN_TABLES: Mapping[str, BuiltinTable] = {
    table.kind: table
    for table in (SEX_TABLE, MARITAL_TABLE, ETHNICITY_TABLE, ID_DOCUMENT_TABLE)
}
