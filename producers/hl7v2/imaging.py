"""PACS/RIS reports to canonical ``imaging-report`` events (ADR 0001).

Two messages carry them. An ORU^R01 from a PACS/RIS is read in the groups of
:func:`producers.hl7v2.oru.order_groups`, one event per OBR (event id position
``OBR<n>``, the OBR's occurrence in the message); an MDM^T02 gives one event
(position ``TXA``). :func:`map_oru` sends each ORU^R01 to this mapper or to the
lab mapper, by :func:`is_imaging_oru`.

Where each field comes from:

    accession_number        OBR-18, else IPC-1, else the filler order number
    placer / filler order   OBR-2 / OBR-3, else ORC-2 / ORC-3 (MDM: then TXA-14 / TXA-15)
    study_instance_uid      ZDS-1 (after the OBR; anywhere when the message has one OBR and
                            one ZDS), else an OBX naming the Study Instance UID (110180 or
                            113014 DCM, suffix &IUID, name "Study Instance UID"), else an
                            OBX of type RP holding a DICOM UID that OBX-3 does not name as
                            a series or instance (SOP) UID
    modality                OBR-24 (MDM: then TXA-2) when it names a modality, else an OBX
                            121139 DCM (Modality); aliases become DICOM codes (MRI, NMR ->
                            MR; PET -> PT; DR -> DX; DSA -> XA; VUS, CUS, OUS -> US)
    procedure_code / _name  OBR-4.1 / OBR-4.2 (one of them required when there is an OBR)
    body_part               OBR-15.4 (code, else text), else an OBX naming the body part
                            (suffix &ANT, 123014 DCM, 39111-0 LN, 检查部位)
    study_at                OBR-7
    reported_at             OBR-22 (MDM: TXA-4 first)
    report_status           OBR-25 as sent, else (MDM) TXA-17 as a result status:
                            AU and LA -> F, DI DO IN IP PA -> P, others as sent
    report_text             the text OBX (ST TX FT and coded values) of the findings
                            sections (&GDT, &ADT, 18782-3, 59776-5, 18834-2, 121060, 121070,
                            121071, 检查所见, 影像所见, ...) and of every OBX whose section is
                            not known; one OBX after the other, repetitions on their own lines
    impression              the text OBX of the impression sections (&IMP, &REC, 19005-8,
                            18783-1, 121072-121077, 诊断意见, 影像诊断, 印象, 结论, ...)
    critical_finding        an OBX-8 flag HH, LL, AA, PANIC, C, CRIT or 危急值, or an OBX
                            naming the critical finding (危急值, "Critical finding") whose
                            value is yes (Y, YES, T, TRUE, 1, 是, 有)
    radiologist_id / _name  OBR-32 (MDM: TXA-9 first), else the first OBX-16; written
                            ``id&family&given`` (NDL) or ``id^family^given`` (XCN); a lone
                            Chinese name is a name, not an id
    performing_department   OBX-23.1, else OBX-15 (code, else text), of the first OBX that
                            has one; PV1-3 is where the patient lies, not who imaged them
    occurred_at             study_at, else reported_at

HL7 escapes are undone by the tokenizer (``\\.br\\`` is a line break). OBX of
other value types (NM measurements, ED documents, RP pointers that are not
the study) carry no report text and are left out. OBR-27 (quantity/timing)
is not read for critical findings: its priority is the order's urgency, not
what the radiologist found. TXA-12 (unique document number) has no field in
the schema yet. A message names the study instance UID, a critical finding or
the like once; when it repeats them the first one counts.

Anything that makes the message unusable raises ValidationError with the HL7
table 0357 code (100 segment missing or out of order, 101 required field
missing, 102 data type error) and a location such as ``OBR[1]-4``; never a value.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from hutong.errors import ValidationError
from producers.hl7v2.common import (
    CLINICIAN_LINK_KEYS,
    HEADER_KEYS,
    Patients,
    make_event,
    person_name,
)
from producers.hl7v2.header import control_id_of
from producers.hl7v2.message import Message, Segment
from producers.hl7v2.oru import map_oru_r01, obx_value, order_groups
from producers.hl7v2.patient import DEFAULT_PROFILE, PatientProfile, is_hanzi, map_patient
from producers.hl7v2.types import parse_ts

__all__ = [
    "IMAGING_REPORT_KEYS", "IMAGING_SECTIONS", "is_imaging_mdm", "is_imaging_oru",
    "map_imaging_oru", "map_mdm_t02", "map_oru",
]

#: Every key of an imaging-report event: the ADR 0001 header, then schemas/imaging-report.avsc.
IMAGING_REPORT_KEYS = (
    *HEADER_KEYS,
    "accession_number", "placer_order_number", "filler_order_number", "study_instance_uid",
    "modality", "procedure_code", "procedure_name", "body_part", "study_at", "reported_at",
    "report_status", "report_text", "impression", "critical_finding", "radiologist_id",
    "radiologist_name", "performing_department",
    *CLINICIAN_LINK_KEYS,
)

#: OBR-24 diagnostic service sections (HL7 table 0074) and modality codes that mean
#: imaging -> the DICOM modality they name (None: imaging, no single modality).
IMAGING_SECTIONS: dict[str, str | None] = {
    "RAD": None, "RX": None, "XR": None, "XRC": None,
    "CT": "CT", "MR": "MR", "MRI": "MR", "NMR": "MR", "US": "US", "VUS": "US", "CUS": "US",
    "OUS": "US", "NM": "NM", "NMS": "NM", "PT": "PT", "PET": "PT", "XA": "XA", "DSA": "XA",
    "DX": "DX", "DR": "DX", "CR": "CR", "MG": "MG", "RF": "RF", "ES": "ES", "IO": "IO",
    "PX": "PX",
}

_TEXT, _IMPRESSION, _UID, _MODALITY, _BODY, _CRITICAL = (
    "text", "impression", "uid", "modality", "body", "critical")

#: OBX-3.1 suffixes (``71020&IMP``) of HL7 chapter 7 and IHE radiology reports.
_SUFFIXES = {"GDT": _TEXT, "ADT": _TEXT, "IMP": _IMPRESSION, "REC": _IMPRESSION,
             "ANT": _BODY, "IUID": _UID}
#: OBX-3.1 codes (LOINC, DICOM DCM) of report sections.
_CODES = {
    "18782-3": _TEXT, "59776-5": _TEXT, "18834-2": _TEXT, "121060": _TEXT, "121070": _TEXT,
    "121071": _TEXT, "19005-8": _IMPRESSION, "18783-1": _IMPRESSION, "121072": _IMPRESSION,
    "121073": _IMPRESSION, "121074": _IMPRESSION, "121075": _IMPRESSION,
    "121076": _IMPRESSION, "121077": _IMPRESSION, "110180": _UID, "113014": _UID,
    "121139": _MODALITY, "123014": _BODY, "39111-0": _BODY,
}
#: OBX-3.2 names (case-folded): they sort sections but do not make a message imaging.
_NAMES = {
    **dict.fromkeys(("findings", "finding", "sr text", "检查所见", "影像所见", "影像表现",
                     "检查描述", "所见"), _TEXT),
    **dict.fromkeys(("impression", "impressions", "conclusion", "conclusions",
                     "recommendation", "诊断意见", "影像诊断", "诊断", "印象", "检查结论",
                     "诊断结论", "结论", "意见", "建议"), _IMPRESSION),
    **dict.fromkeys(("study instance uid", "检查实例uid"), _UID),
    **dict.fromkeys(("modality", "检查类型", "设备类型"), _MODALITY),
    **dict.fromkeys(("body part", "body part examined", "检查部位", "部位"), _BODY),
    **dict.fromkeys(("critical finding", "critical result", "危急值"), _CRITICAL),
}
_OTHER_UID_WORDS = ("series", "sop", "instance", "序列", "实例")
_CRITICAL_FLAGS = frozenset({"HH", "LL", "AA", "PANIC", "C", "CRIT", "危急值", "危急"})
_YES = frozenset({"Y", "YES", "T", "TRUE", "1", "是", "有"})
_TEXT_TYPES = frozenset({"", "ST", "TX", "FT", "CE", "CWE", "CNE", "CF"})
#: TXA-17 document completion status (HL7 table 0271) -> OBR-25 result status.
_TXA_STATUS = {"AU": "F", "LA": "F", "DI": "P", "DO": "P", "IN": "P", "IP": "P", "PA": "P"}
#: A DICOM UID: digits in dot-separated parts, 64 characters at most.
_DICOM_UID = re.compile(r"\d+(?:\.\d+){2,}", re.ASCII)


def _is_uid(value: str) -> bool:
    return len(value) <= 64 and _DICOM_UID.fullmatch(value) is not None


def _section(obx: Segment) -> tuple[str | None, bool]:
    """The report section an OBX belongs to, and whether OBX-3 marks an imaging report."""
    code = obx.get(3, 1).strip()
    # 71020&IMP is two subcomponents; written \T\ (or under other delimiters) it is one
    suffix = obx.get(3, 1, sub=2).strip() or (code.rpartition("&")[2] if "&" in code else "")
    if (found := _SUFFIXES.get(suffix.upper())) is not None:
        return found, True
    if (found := _CODES.get(code)) is not None:
        return found, True
    found = _NAMES.get(" ".join(obx.get(3, 2).split()).casefold())
    return found, found == _UID


def _rp_uid(obx: Segment) -> str | None:
    """The DICOM UID of an RP OBX that OBX-3 does not name as a series or instance UID."""
    if obx.get(2).strip().upper() != "RP" or not _is_uid(value := obx.get(5, 1).strip()):
        return None
    name = obx.get(3, 2).casefold()
    return None if any(word in name for word in _OTHER_UID_WORDS) else value


def is_imaging_oru(msg: Message) -> bool:
    """Whether an ORU^R01 is a PACS/RIS report rather than a laboratory result.

    It is when any of these holds, else it goes to the lab mapper:

    * an OBR-24 diagnostic service section is in :data:`IMAGING_SECTIONS` (RAD, RX,
      CT, MR, US, NMR, NM, XA, DX, CR, MG, PET/PT, RF, ES, ...); lab sections (LAB,
      HM, CH, ...) and an empty OBR-24 say nothing either way;
    * an OBX-3 carries a report-section suffix (``&GDT``, ``&IMP``, ``&ADT``,
      ``&REC``, ``&ANT``, ``&IUID``) or a LOINC/DICOM report-section code (18782-3,
      19005-8, 18834-2, 121060, 121071, 110180, 121139, ...), or names the Study
      Instance UID;
    * the message has a ZDS segment (the study instance UID of IHE radiology);
    * an OBX of value type RP holds a DICOM UID.

    A message is mapped whole by one mapper: a PACS and a LIS result in one
    ORU^R01 become imaging reports.
    """
    if msg.segment("ZDS") is not None:
        return True
    if any(obr.get(24).strip().upper() in IMAGING_SECTIONS for obr in msg.segments("OBR")):
        return True
    return any(_section(obx)[1] or _rp_uid(obx) for obx in msg.segments("OBX"))


def _person(seg: Segment, n: int) -> tuple[str | None, str | None]:
    """(id, name) from an NDL (``id&family&given``) or XCN (``id^family^given``) field."""
    if seg.get(n, 1, sub=2) or seg.get(n, 1, sub=3):
        ident, family, given = (seg.get(n, 1, sub=k).strip() for k in (1, 2, 3))
    else:
        ident, family, given = (seg.get(n, k).strip() for k in (1, 2, 3))
    if ident and not family and not given and is_hanzi(ident):
        return None, ident  # a name alone, as many Chinese RIS send it
    return ident or None, person_name(family, given)


def _check_uid(uid: str, where: str, warnings: list[str]) -> str | None:
    if uid and not _is_uid(uid):
        warnings.append(f"{where}: study instance UID is not a DICOM UID")
    return uid or None


def _study_fields(obr: Segment | None, orc: Segment | None, extra: list[Segment],
                  warnings: list[str]) -> dict[str, Any]:
    """The fields OBR, ORC, IPC and ZDS give; all None without an OBR except ORC's."""
    placer = orc.get(2).strip() if orc else ""
    filler = orc.get(3).strip() if orc else ""
    ipc = next((s for s in extra if s.name == "IPC"), None)
    zds = next((s for s in extra if s.name == "ZDS"), None)
    fields: dict[str, Any] = dict.fromkeys(
        ("modality", "procedure_code", "procedure_name", "body_part", "study_at",
         "reported_at", "report_status", "radiologist_id", "radiologist_name"))
    if obr is not None:
        placer, filler = obr.get(2).strip() or placer, obr.get(3).strip() or filler
        code, name = obr.get(4, 1).strip(), obr.get(4, 2).strip()
        if not code and not name:
            raise ValidationError("OBR-4 universal service identifier (the examination) is "
                                  "empty", location=obr.location(4), code="101")
        radiologist_id, radiologist_name = _person(obr, 32)
        fields.update({
            "modality": IMAGING_SECTIONS.get(obr.get(24).strip().upper()),
            "procedure_code": code or None,
            "procedure_name": name or None,
            "body_part": (obr.get(15, 4, sub=1) or obr.get(15, 4, sub=2)).strip() or None,
            "study_at": parse_ts(obr.get(7, 1), obr.location(7)),
            "reported_at": parse_ts(obr.get(22, 1), obr.location(22)),
            "report_status": obr.get(25).strip() or None,
            "radiologist_id": radiologist_id,
            "radiologist_name": radiologist_name,
        })
    accession = ((obr.get(18).strip() if obr else "") or (ipc.get(1).strip() if ipc else "")
                 or filler)
    fields.update({
        "accession_number": accession or None,
        "placer_order_number": placer or None,
        "filler_order_number": filler or None,
        "study_instance_uid": _check_uid(zds.get(1).strip(), zds.location(1), warnings)
        if zds is not None else None,
    })
    return fields


def _report(obxs: list[Segment], warnings: list[str]) -> dict[str, Any]:
    """What the OBX give: report text, impression, critical finding and fallbacks."""
    text: list[str] = []
    impression: list[str] = []
    found: dict[str, Any] = {"critical_finding": False}
    for obx in obxs:
        value_type = obx.get(2).strip().upper()
        if not value_type and obx.field(5):
            raise ValidationError("OBX-2 value type is empty but OBX-5 holds a value",
                                  location=obx.location(2), code="101")
        if any(obx.get(8, 1, r).strip().upper() in _CRITICAL_FLAGS
               for r in range(1, len(obx.repetitions(8)) + 1)):
            found["critical_finding"] = True
        radiologist = _person(obx, 16)
        if radiologist != (None, None):
            found.setdefault("radiologist", radiologist)
        if department := (obx.get(23, 1) or obx.get(15, 1) or obx.get(15, 2)).strip():
            found.setdefault("performing_department", department)
        section, _ = _section(obx)
        first = (obx.get(5, 1) or obx.get(5, 2)).strip()
        if section == _UID:
            found.setdefault("study_instance_uid", _check_uid(first, obx.location(5), warnings))
        elif section == _MODALITY:
            if modality := IMAGING_SECTIONS.get(first.upper(), first):
                found.setdefault("modality", modality)
        elif section == _CRITICAL:
            found["critical_finding"] |= first.upper() in _YES
        elif uid := _rp_uid(obx):
            found.setdefault("study_instance_uid", uid)
        elif value_type in _TEXT_TYPES:
            value, _ = obx_value(obx, value_type)
            if value is None:
                continue
            if section == _BODY:
                found.setdefault("body_part", value.strip())
            else:
                (impression if section == _IMPRESSION else text).append(value)
    found["report_text"] = "\n".join(text) or None
    found["impression"] = "\n".join(impression) or None
    return found


def _event(msg: Message, study: dict[str, Any], report: dict[str, Any], *, facility_id: str,
           received_at: datetime, position: str, patient: tuple[dict[str, Any], list[str]],
           warnings: list[str]) -> dict[str, Any]:
    """One event: the study fields, filled in from the OBX where the study left them empty."""
    for key in ("study_instance_uid", "modality", "body_part"):
        study[key] = study[key] or report.get(key)
    if study["radiologist_id"] is None and study["radiologist_name"] is None:
        study["radiologist_id"], study["radiologist_name"] = report.get("radiologist",
                                                                        (None, None))
    fields = {**study, **{key: report.get(key) for key in (
        "report_text", "impression", "critical_finding", "performing_department")}}
    return make_event(msg, IMAGING_REPORT_KEYS, fields, facility_id=facility_id,
                      received_at=received_at, position=position, event_type="imaging-report",
                      patient=patient, occurred_at=study["study_at"] or study["reported_at"],
                      warnings=warnings)


def map_imaging_oru(
    msg: Message, *, facility_id: str, received_at: datetime,
    profile: PatientProfile = DEFAULT_PROFILE,
) -> list[dict[str, Any]]:
    """One ``imaging-report`` event dict per OBR of a PACS/RIS ORU^R01 message.

    ``facility_id`` is the authenticated facility (or MSH-4.1); ``received_at``
    must be timezone aware. Raises ValidationError when the message cannot give
    complete events; then it yields none at all.
    """
    control_id_of(msg, received_at)
    groups = order_groups(msg)
    zds = msg.segments("ZDS")
    events: list[dict[str, Any]] = []
    patients = Patients(profile)
    for group in groups:
        patient = patients(group.pid)
        warnings: list[str] = []
        extra = group.extra
        if len(groups) == 1 and len(zds) == 1 and zds[0] not in extra:
            extra = [*extra, zds[0]]  # one study: its ZDS may stand before the OBR
        study = _study_fields(group.obr, group.orc, extra, warnings)
        report = _report(group.results, warnings)
        events.append(_event(msg, study, report, facility_id=facility_id,
                             received_at=received_at, position=f"OBR{group.obr.index}",
                             patient=patient, warnings=warnings))
    return events


def map_oru(
    msg: Message, *, facility_id: str, received_at: datetime,
    profile: PatientProfile = DEFAULT_PROFILE,
) -> list[dict[str, Any]]:
    """An ORU^R01 as ``imaging-report`` events when :func:`is_imaging_oru`, else ``lab-result``."""
    mapper = map_imaging_oru if is_imaging_oru(msg) else map_oru_r01
    return mapper(msg, facility_id=facility_id, received_at=received_at, profile=profile)


#: HL7 table 0270 document types that are not imaging reports.
_OTHER_DOCUMENTS = frozenset({"AR", "CD", "CN", "DS", "ED", "HP", "OP", "PC", "PH", "PN", "PR",
                              "SP", "TS"})


def is_imaging_mdm(msg: Message) -> bool:
    """Whether an MDM^T02 carries an imaging report, decided by TXA-2 first.

    TXA-2 ``DI`` (table 0270, diagnostic imaging) or an imaging section or modality
    (:data:`IMAGING_SECTIONS`) says yes; another table 0270 type (DS discharge
    summary, OP operative note, ...) says no. An empty or local TXA-2 is an imaging
    report when anything else in the message says so (OBR-24, a report-section OBX,
    ZDS, or an IPC segment, which only imaging orders carry).
    """
    txa = msg.segment("TXA")
    kind = txa.get(2).strip().upper() if txa is not None else ""
    if kind == "DI" or kind in IMAGING_SECTIONS:
        return True
    if kind in _OTHER_DOCUMENTS:
        return False
    return msg.segment("IPC") is not None or is_imaging_oru(msg)


def map_mdm_t02(
    msg: Message, *, facility_id: str, received_at: datetime,
    profile: PatientProfile = DEFAULT_PROFILE,
) -> list[dict[str, Any]]:
    """The ``imaging-report`` event of an MDM^T02 (document notification and content).

    Needs PID, TXA and at least one OBX; ORC, OBR, IPC and ZDS are read when present
    (the first of each). Raises ValidationError like :func:`map_imaging_oru`, and
    for a document that is not an imaging report (:func:`is_imaging_mdm`): TXA-2,
    HL7 error 103, so it goes to the dead letters with that reason.
    """
    control_id_of(msg, received_at)
    pid, txa, obxs = msg.segment("PID"), msg.segment("TXA"), msg.segments("OBX")
    if pid is None:
        raise ValidationError("message has no PID segment", location="PID", code="100")
    if txa is None:
        raise ValidationError("message has no TXA segment", location="TXA", code="100")
    if not obxs:
        raise ValidationError("MDM^T02 has no OBX segment (the document content)",
                              location="OBX", code="100")
    if not is_imaging_mdm(msg):
        kind = txa.get(2).strip().upper()
        raise ValidationError(
            f"MDM^T02 document type {kind or '(empty)'} is not an imaging report; hutong "
            "takes other clinical documents as CDA (POST /api/v1/ingest/cda)",
            location=txa.location(2), code="103")
    patient = map_patient(pid, profile)
    warnings: list[str] = []
    extra = [s for s in (msg.segment("IPC"), msg.segment("ZDS")) if s is not None]
    study = _study_fields(msg.segment("OBR"), msg.segment("ORC"), extra, warnings)
    study["placer_order_number"] = study["placer_order_number"] or txa.get(14).strip() or None
    if study["filler_order_number"] is None and (filler := txa.get(15).strip()):
        study["filler_order_number"] = filler
        study["accession_number"] = study["accession_number"] or filler
    if study["modality"] is None:
        study["modality"] = IMAGING_SECTIONS.get(txa.get(2).strip().upper())
    study["reported_at"] = parse_ts(txa.get(4, 1), txa.location(4)) or study["reported_at"]
    if study["report_status"] is None and (status := txa.get(17).strip().upper()):
        study["report_status"] = _TXA_STATUS.get(status, status)
    originator = _person(txa, 9)
    if originator != (None, None):
        study["radiologist_id"], study["radiologist_name"] = originator
    report = _report(obxs, warnings)
    return [_event(msg, study, report, facility_id=facility_id, received_at=received_at,
                   position="TXA", patient=patient, warnings=warnings)]
