"""Institution codes: GB 32100 unified social credit codes and GB 11714 organisation codes.

A unified social credit code (统一社会信用代码, USCC) has 18 characters: the
registration authority (1), the organisation category (1), the registering
authority's GB/T 2260 division code (6), the GB 11714 organisation code (9, with
its own check character) and a MOD 31 check character over the first 17, drawn
from ``0-9`` and ``A-Y`` without ``I O S V Z``. Public hospitals are mostly
事业单位 and start ``12``.

A wrong check character is a warning, not a refusal: codes issued in the pilot
regions before the rule settled are legally valid and fail it (see
``shared/reference/cn-standards.md`` §2). A code of the wrong length or with a
character outside the set is refused: it is not a code at all.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

__all__ = ["PROVINCES", "CodeCheck", "check_org_code", "check_region_code", "check_uscc",
           "org_code_check_character", "uscc_check_character"]

_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUE = {c: i for i, c in enumerate(_USCC_CHARS)}
#: Weights of positions 1..17: 3^(i-1) mod 31.
_USCC_WEIGHTS = tuple(pow(3, i, 31) for i in range(17))
#: Registration authorities (position 1): 1 机构编制 ... 9 工商, A-G, Y 其他.
_AUTHORITIES = frozenset("123456789ABCDEFGY")
_ORG_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


@dataclass(frozen=True, slots=True)
class CodeCheck:
    """What a code says about itself; ``code`` is its normalised form."""

    code: str
    #: None when the code is acceptable; else why it is not a code at all.
    problem: str | None = None
    #: A finding to record beside an acceptable code (a check character that does not match).
    warning: str | None = None

    @property
    def acceptable(self) -> bool:
        return self.problem is None


def _clean(raw: str) -> str:
    """Full-width characters folded, spaces and hyphens removed, upper case."""
    text = unicodedata.normalize("NFKC", raw)
    return "".join(c for c in text if c not in " -\t").upper()


def uscc_check_character(first17: str) -> str:
    """The MOD 31 check character for the first 17 characters of a USCC."""
    if len(first17) != 17 or any(c not in _USCC_VALUE for c in first17):
        raise ValueError("expected 17 characters of the USCC character set")
    total = sum(_USCC_VALUE[c] * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return _USCC_CHARS[(31 - total % 31) % 31]


def org_code_check_character(first8: str) -> str:
    """The GB 11714 check character for the first 8 characters of an organisation code."""
    if len(first8) != 8 or any(c not in _ORG_CHARS for c in first8):
        raise ValueError("expected 8 characters 0-9 or A-Z")
    total = sum(_ORG_CHARS.index(c) * w for c, w in zip(first8, _ORG_WEIGHTS, strict=True))
    check = 11 - total % 11
    return {10: "X", 11: "0"}.get(check, str(check))


def check_uscc(raw: str) -> CodeCheck:
    """Check a unified social credit code (GB 32100-2015)."""
    code = _clean(raw)
    if len(code) != 18:
        return CodeCheck(code, f"a unified social credit code has 18 characters, not {len(code)}")
    wrong = sorted({c for c in code if c not in _USCC_VALUE})
    if wrong:
        return CodeCheck(code, "a unified social credit code uses 0-9 and A-Y without I, O, "
                               f"S, V, Z; found {''.join(wrong)!r}")
    if not code[2:8].isdigit():
        return CodeCheck(code, "characters 3-8 must be the registering authority's division "
                               "code (6 digits)")
    warnings = []
    if code[0] not in _AUTHORITIES:  # a newer authority than the list knows, perhaps
        warnings.append(f"registration authority {code[0]!r} (first character) is not one "
                        "of 1-9, A-G, Y")
    expected = uscc_check_character(code[:17])
    if code[17] != expected:
        warnings.append(f"check character is {code[17]!r} where GB 32100 computes "
                        f"{expected!r} (valid for some pilot-era codes; verify with the "
                        "institution)")
    embedded = check_org_code(code[8:17])
    if embedded.acceptable and embedded.warning:
        warnings.append(f"the embedded organisation code: {embedded.warning}")
    return CodeCheck(code, warning="; ".join(warnings) or None)


def check_org_code(raw: str) -> CodeCheck:
    """Check a GB 11714 organisation code (组织机构代码), with or without its hyphen."""
    code = _clean(raw)
    if len(code) != 9:
        return CodeCheck(code, f"an organisation code has 9 characters, not {len(code)}")
    if any(c not in _ORG_CHARS for c in code[:8]) or code[8] not in _ORG_CHARS:
        return CodeCheck(code, "an organisation code uses 0-9 and A-Z (X as a check character)")
    expected = org_code_check_character(code[:8])
    if code[8] != expected:
        return CodeCheck(code, warning=f"check character is {code[8]!r} where GB 11714 "
                                       f"computes {expected!r}")
    return CodeCheck(code)


#: GB/T 2260 province-level codes (the first two digits of a division code).
PROVINCES = {
    "11": "北京", "12": "天津", "13": "河北", "14": "山西", "15": "内蒙古", "21": "辽宁",
    "22": "吉林", "23": "黑龙江", "31": "上海", "32": "江苏", "33": "浙江", "34": "安徽",
    "35": "福建", "36": "江西", "37": "山东", "41": "河南", "42": "湖北", "43": "湖南",
    "44": "广东", "45": "广西", "46": "海南", "50": "重庆", "51": "四川", "52": "贵州",
    "53": "云南", "54": "西藏", "61": "陕西", "62": "甘肃", "63": "青海", "64": "宁夏",
    "65": "新疆", "71": "台湾", "81": "香港", "82": "澳门",
}


def check_region_code(raw: str) -> CodeCheck:
    """Check a GB/T 2260 division code: six digits under a known province."""
    code = _clean(raw)
    if len(code) != 6 or not code.isdigit():
        return CodeCheck(code, "a division code (GB/T 2260) has six digits")
    if code[:2] not in PROVINCES:
        return CodeCheck(code, f"{code[:2]} is not a province code of GB/T 2260")
    return CodeCheck(code)
