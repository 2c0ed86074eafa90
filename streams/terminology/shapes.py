"""What a LOINC or ICD-10 code looks like, and which system names mean them.

A code a facility sends as LOINC or ICD-10 passes through translation
unchanged only when it has the right shape, so a local code in a mislabelled
field does not enter the warehouse as a standard one.

* LOINC: digits, a hyphen and a check digit (``2823-3``). The check digit is
  LOINC's mod-10 rule, which is the Luhn algorithm over the digits before the
  hyphen (checked against every code in reference §6).
* ICD-10 国家临床版 2.0 (reference §7): a 3-character category, ``.``, three
  characters with ``x`` filling an absent 4th character (``I10.x00``,
  ``E11.900``), optionally an extension ``x`` + 3 digits (``I10.x00x002``).
  A bare WHO code (``I10``, ``E11.9``) is accepted too. The letter is upper
  case and the filler a lower-case ``x`` in the form returned.
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["ICD10_SYSTEMS", "LOINC_SYSTEMS", "icd10_code", "is_icd10_system", "is_loinc",
           "is_loinc_system"]

#: ``test_system`` values (stripped, upper case) that mean LOINC (HL7 table 0396 ``LN``).
LOINC_SYSTEMS = frozenset({"LN", "LOINC", "2.16.840.1.113883.6.1"})

#: ``diagnosis_system`` values that mean ICD-10 as China codes it, compared upper case
#: without spaces, hyphens, dots, slashes and underscores: HL7 table 0053 ``I10``,
#: ICD-10 spelled any way, ``ICD-10-CN``, GB/T 14396 (the national standard built on
#: ICD-10), 国家临床版 2.0, and its CDA code system OID 2.16.156.10011.2.3.3.11
#: (reference §5.4). Not ICD-10-CM (the US modification) and not 医保版 (other codes).
ICD10_SYSTEMS = frozenset({
    "I10", "ICD10", "ICD10CN", "GBT14396", "GB14396", "GBT143962016",
    "ICD10国家临床版", "ICD10国家临床版20", "国家临床版", "国家临床版20", "临床版20",
    "2161561001123311",
})

_SYSTEM_NOISE = re.compile(r"[\s\-./_]+")
_LOINC = re.compile(r"(\d{1,7})-(\d)", re.ASCII)
_ICD10 = re.compile(r"[A-Z]\d\d(?:\.\d|\.[\dx]\d\d(?:x\d{3})?)?", re.ASCII)


def is_loinc_system(system: str | None) -> bool:
    """True when a ``test_system`` says the code is LOINC."""
    return system is not None and system.strip().upper() in LOINC_SYSTEMS


@lru_cache(maxsize=1024)
def is_icd10_system(system: str | None) -> bool:
    """True when a ``diagnosis_system`` says the code is ICD-10 as used in China."""
    return system is not None and _SYSTEM_NOISE.sub("", system.upper()) in ICD10_SYSTEMS


@lru_cache(maxsize=8192)
def is_loinc(code: str) -> bool:
    """True when ``code`` has the LOINC shape and its check digit is right."""
    match = _LOINC.fullmatch(code)
    if match is None:
        return False
    body, check = match.groups()
    total = 0
    for position, digit in enumerate(reversed(body)):
        value = int(digit) * (2 if position % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return (10 - total % 10) % 10 == int(check)


@lru_cache(maxsize=65536)
def icd10_code(code: str) -> str | None:
    """The code in ICD-10 国家临床版 2.0 form (``i10.X00`` -> ``I10.x00``), or None."""
    text = code.strip()
    if len(text) < 3:
        return None
    text = text[0].upper() + text[1:].replace("X", "x")
    return text if _ICD10.fullmatch(text) else None
