"""Which sensitive categories a document falls in (传染病, 精神卫生): they leave only de-identified.

==================  ===============================================================
category            what makes a document fall in it
==================  ===============================================================
infectious-disease  a diagnosis coded ICD-10 chapter I (A00-B99), U07 (COVID-19,
                    U07.1/U07.2), or one of the HIV codes outside chapter I: Z21
                    (asymptomatic HIV infection status), R75 (inconclusive
                    laboratory evidence of HIV), O98.7 (HIV disease complicating
                    pregnancy); a lab test that identifies HIV: its LOINC code
                    (translated, or as sent when sent as LOINC) is in
                    :data:`HIV_LOINC`, or its test or panel name names HIV
                    (:data:`HIV_NAME_MARKERS`), as a facility's local HIV test
                    may not be translated yet; a prescribed antiretroviral
                    (below)
mental-health       a diagnosis coded ICD-10 chapter V (F00-F99); a prescribed
                    antipsychotic (below)
==================  ===============================================================

A diagnosis counts by the code translation gave it and by the code as sent, a
lab test by its translated LOINC code and by its code as sent when sent as
LOINC, either matching: a document is flagged rather than missed. The test itself is
sensitive, whatever its result: that someone was tested for HIV is.

A prescription line counts by its drug (:data:`SENSITIVE_DRUG_CLASSES`): an
ATC code starting J05AE, J05AF, J05AG, J05AJ or J05AR (HIV protease, nucleoside
and non-nucleoside reverse transcriptase and integrase inhibitors, and their
combinations; J05AF also holds the hepatitis B nucleosides, chapter I like
hepatitis B itself) is infectious-disease, N05A (antipsychotics, lithium
included) is mental-health. Both the code translation gave the drug and the
code as sent count, whatever system they name: an ATC code has a shape of its
own, and regional drug code systems are not ATC. As a local drug code may not
be translated yet, the drug's name counts too: it contains one of the generic
names in :data:`SENSITIVE_DRUG_NAMES` (Chinese 通用名 and the English INN, compared
case-insensitively). The list names the drugs in use in China in those classes;
a drug missing from it is still found by its ATC code once translated.

A received CDA (:func:`received_categories`) is judged by its type (WS/T 483
传染病报告 HSDB03.02; 重性精神疾病 HSDB04.03 and HSDB04.04, reference §5.5), by
every ICD-10 and LOINC code in it, and by every ATC code (WHO ATC,
2.16.840.1.113883.6.73) in it.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence

from producers.cda.xml import Element
from sinks.docstore.assembly.events import Record, coding, first
from sinks.docstore.assembly.lab import LOINC_NAMES, loinc_of
from sinks.docstore.assembly.oids import ICD10_SYSTEM, LOINC_SYSTEM
from sinks.docstore.model import Part

__all__ = ["ATC_SYSTEM", "HIV_LOINC", "HIV_NAME_MARKERS", "INFECTIOUS", "MENTAL_HEALTH",
           "SENSITIVE_DRUG_CLASSES", "SENSITIVE_DRUG_NAMES", "SENSITIVE_TYPES", "drug_category",
           "icd10_category", "received_categories", "sensitivity"]

INFECTIOUS = "infectious-disease"
MENTAL_HEALTH = "mental-health"

#: LOINC codes of tests that identify HIV infection, from common knowledge (checked
#: against the CMS eCQM HIV value set 2.16.840.1.113762.1.4.1056.50 where listed there).
HIV_LOINC = frozenset({
    # antibodies
    "7917-8",   # HIV 1 Ab [Presence] in Serum
    "7918-6",   # HIV 1+2 Ab [Presence] in Serum
    "7919-4",   # HIV 2 Ab [Presence] in Serum
    "5221-7",   # HIV 1 Ab [Presence] in Serum or Plasma by Immunoblot
    "29893-5",  # HIV 1 Ab [Presence] in Serum or Plasma by Immunoassay
    "30361-0",  # HIV 2 Ab [Presence] in Serum or Plasma by Immunoassay
    "31201-7",  # HIV 1+2 Ab [Presence] in Serum or Plasma by Immunoassay
    "49580-4",  # HIV 1+2 Ab [Presence] in Specimen by Rapid immunoassay
    "68961-2",  # HIV 1 Ab [Presence] in Serum, Plasma or Blood by Rapid immunoassay
    # antigen, and antigen with antibodies (4th generation)
    "9821-0",   # HIV 1 p24 Ag [Presence] in Serum
    "18396-2",  # HIV 1 p24 Ag [Presence] in Serum or Plasma by Immunoassay
    "56888-1",  # HIV 1+2 Ab+HIV1 p24 Ag [Presence] in Serum or Plasma by Immunoassay
    "58900-2",  # HIV 1+2 Ab+HIV1 p24 Ag [Units/volume] in Serum or Plasma by Immunoassay
    # RNA (viral load)
    "20447-9",  # HIV 1 RNA [#/volume] (viral load) in Serum or Plasma by NAA
    "10351-5",  # HIV 1 RNA [Units/volume] (viral load) in Serum or Plasma by NAA
    "25836-8",  # HIV 1 RNA [#/volume] (viral load) in Serum or Plasma by NAA
    "23876-6",  # HIV 1 RNA [#/volume] in Plasma by NAA
    "24013-5",  # HIV 1 RNA [#/volume] (viral load) in Serum or Plasma by bDNA
})

#: Words in a test or panel name (compared upper case) that name an HIV test.
HIV_NAME_MARKERS = ("HIV", "艾滋", "人类免疫缺陷病毒")

#: ATC code prefixes of the drug classes that reveal a sensitive category.
SENSITIVE_DRUG_CLASSES = {
    "J05AE": INFECTIOUS,  # HIV protease inhibitors
    "J05AF": INFECTIOUS,  # nucleoside and nucleotide reverse transcriptase inhibitors
    "J05AG": INFECTIOUS,  # non-nucleoside reverse transcriptase inhibitors
    "J05AJ": INFECTIOUS,  # integrase inhibitors
    "J05AR": INFECTIOUS,  # antivirals for HIV, combinations
    "N05A": MENTAL_HEALTH,  # antipsychotics
}

#: Generic names (通用名, and the English INN) of antiretrovirals and antipsychotics used in
#: China, from the ATC classes above: a line naming one is flagged even untranslated.
SENSITIVE_DRUG_NAMES = {
    # antiretrovirals (J05AE, J05AF, J05AG, J05AJ, J05AR)
    "齐多夫定": INFECTIOUS, "zidovudine": INFECTIOUS,
    "拉米夫定": INFECTIOUS, "lamivudine": INFECTIOUS,
    "替诺福韦": INFECTIOUS, "tenofovir": INFECTIOUS,
    "恩曲他滨": INFECTIOUS, "emtricitabine": INFECTIOUS,
    "阿巴卡韦": INFECTIOUS, "abacavir": INFECTIOUS,
    "司他夫定": INFECTIOUS, "stavudine": INFECTIOUS,
    "依非韦伦": INFECTIOUS, "efavirenz": INFECTIOUS,
    "奈韦拉平": INFECTIOUS, "nevirapine": INFECTIOUS,
    "利匹韦林": INFECTIOUS, "rilpivirine": INFECTIOUS,
    "艾诺韦林": INFECTIOUS, "ainuovirine": INFECTIOUS,
    "洛匹那韦": INFECTIOUS, "lopinavir": INFECTIOUS,
    "达芦那韦": INFECTIOUS, "darunavir": INFECTIOUS,
    "阿扎那韦": INFECTIOUS, "atazanavir": INFECTIOUS,
    "多替拉韦": INFECTIOUS, "dolutegravir": INFECTIOUS,
    "拉替拉韦": INFECTIOUS, "raltegravir": INFECTIOUS,
    "比克替拉韦": INFECTIOUS, "bictegravir": INFECTIOUS,
    "艾维雷韦": INFECTIOUS, "elvitegravir": INFECTIOUS,
    # antipsychotics (N05A)
    "氯氮平": MENTAL_HEALTH, "clozapine": MENTAL_HEALTH,
    "奥氮平": MENTAL_HEALTH, "olanzapine": MENTAL_HEALTH,
    "利培酮": MENTAL_HEALTH, "risperidone": MENTAL_HEALTH,
    "帕利哌酮": MENTAL_HEALTH, "paliperidone": MENTAL_HEALTH,
    "喹硫平": MENTAL_HEALTH, "quetiapine": MENTAL_HEALTH,
    "阿立哌唑": MENTAL_HEALTH, "aripiprazole": MENTAL_HEALTH,
    "齐拉西酮": MENTAL_HEALTH, "ziprasidone": MENTAL_HEALTH,
    "氟哌啶醇": MENTAL_HEALTH, "haloperidol": MENTAL_HEALTH,
    "氯丙嗪": MENTAL_HEALTH, "chlorpromazine": MENTAL_HEALTH,
    "奋乃静": MENTAL_HEALTH, "perphenazine": MENTAL_HEALTH,
    "舒必利": MENTAL_HEALTH, "sulpiride": MENTAL_HEALTH,
    "氨磺必利": MENTAL_HEALTH, "amisulpride": MENTAL_HEALTH,
    "鲁拉西酮": MENTAL_HEALTH, "lurasidone": MENTAL_HEALTH,
    "布南色林": MENTAL_HEALTH, "blonanserin": MENTAL_HEALTH,
    "哌罗匹隆": MENTAL_HEALTH, "perospirone": MENTAL_HEALTH,
    "五氟利多": MENTAL_HEALTH, "penfluridol": MENTAL_HEALTH,
    "碳酸锂": MENTAL_HEALTH, "lithium carbonate": MENTAL_HEALTH,
}

#: The WHO ATC code system (HL7's OID for it), as a received CDA names it.
ATC_SYSTEM = "2.16.840.1.113883.6.73"

#: ICD-10 codes outside chapters I and V that say HIV, without the dot.
_HIV_ICD10 = ("Z21", "R75", "O987")

#: WS/T 483 document types that are sensitive by what they are.
SENSITIVE_TYPES = {"HSDB03.02": INFECTIOUS, "HSDB04.03": MENTAL_HEALTH,
                   "HSDB04.04": MENTAL_HEALTH}

#: codeSystem roots whose codes are ICD-10: the national table (and its .1, .3 variants
#: seen in templates, reference §5.4) and WHO ICD-10 (2.16.840.1.113883.6.3).
_ICD10_SYSTEMS = (ICD10_SYSTEM, "2.16.840.1.113883.6.3")


def icd10_category(code: str | None) -> str | None:
    """The sensitive category of an ICD-10 code (``B20``, ``F32.900``, ``U07.1``), or None."""
    if not code:
        return None
    text = unicodedata.normalize("NFKC", code).strip().upper()
    if len(text) < 3 or not ("A" <= text[0] <= "Z") or not text[1:3].isdigit():
        return None
    if text[0] in "AB" or text.startswith("U07") or text.replace(".", "").startswith(
            _HIV_ICD10):
        return INFECTIOUS
    return MENTAL_HEALTH if text[0] == "F" else None


def drug_category(code: str | None = None, name: str | None = None) -> str | None:
    """The sensitive category of a drug, by its ATC code or its generic name, or None."""
    if code:
        compact = "".join(unicodedata.normalize("NFKC", code).split()).upper()
        for prefix, category in SENSITIVE_DRUG_CLASSES.items():
            if compact.startswith(prefix):
                return category
    if name:
        folded = unicodedata.normalize("NFKC", name).casefold()
        for generic, category in SENSITIVE_DRUG_NAMES.items():
            if generic in folded:
                return category
    return None


def _drug_categories(record: Record) -> Iterable[str | None]:
    translated = coding(record, "drug_code")
    if translated is not None:
        yield drug_category(str(translated["code"]), first(translated.get("display")))
    yield drug_category(first(record.get("drug_code")), first(record.get("drug_name")))


def _loinc_codes(record: Record) -> set[str | None]:
    """The translated LOINC code and the code as sent when sent as LOINC: either counts."""
    sent_as_loinc = str(record.get("test_system") or "").strip().upper() in LOINC_NAMES
    return {loinc_of(record), first(record.get("test_code")) if sent_as_loinc else None}


def _is_hiv_test(record: Record) -> bool:
    if _loinc_codes(record) & HIV_LOINC:
        return True
    names = " ".join(first(record.get(name)) or "" for name in ("test_name", "panel_name"))
    return any(marker in names.upper() for marker in HIV_NAME_MARKERS)


def _diagnosis_codes(record: Record) -> Iterable[str | None]:
    translated = coding(record, "diagnosis_code")
    yield None if translated is None else str(translated["code"])
    yield first(record.get("diagnosis_code"))


def sensitivity(parts: Sequence[Part]) -> frozenset[str]:
    """The sensitive categories (a subset of SENSITIVE_CATEGORIES) the parts fall in."""
    found: set[str] = set()
    for schema_name, record in parts:
        if schema_name == "diagnosis":
            found.update(category for code in _diagnosis_codes(record)
                         if (category := icd10_category(code)) is not None)
        elif schema_name == "lab-result" and _is_hiv_test(record):
            found.add(INFECTIOUS)
        elif schema_name == "medication":
            found.update(category for category in _drug_categories(record)
                         if category is not None)
    return frozenset(found)


def received_categories(type_code: str | None, document: Element | None) -> frozenset[str]:
    """The categories of a received CDA: by its type, and by every code in ``document``."""
    found = {SENSITIVE_TYPES[type_code]} if type_code in SENSITIVE_TYPES else set()
    if document is not None:
        for element in document.iter():
            system, code = element.get("codeSystem") or "", element.get("code")
            if system.startswith(_ICD10_SYSTEMS):
                if (category := icd10_category(code)) is not None:
                    found.add(category)
            elif system == LOINC_SYSTEM and (code or "").strip() in HIV_LOINC:
                found.add(INFECTIOUS)
            elif system == ATC_SYSTEM and (category := drug_category(code)) is not None:
                found.add(category)
    return frozenset(found)
