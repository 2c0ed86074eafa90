"""西药处方 (WS/T 500 part 4, C0004) from the ``medication`` lines of one prescription.

Which lines the prescription holds, taking the events oldest first (by
``occurred_at``, ``prescribed_at``, ``received_at``): a line is identified by
its placer order number, else its filler order number, else its drug code;

* ``prescribe`` puts the line in (a later one replaces an earlier one);
* ``dispense`` puts it in only when no ``prescribe`` of that line did, so a
  pharmacy that sends only RDS still gets a prescription, and a dispensed
  prescription does not list its drugs twice;
* ``cancel`` takes it out.

With no line left (every line cancelled) there is no document: None, and a
prescription already stored is withdrawn (:func:`withdrawn`).

One section, 用药 (LOINC 10160-0 HISTORY OF MEDICATION USE, reference §5.2),
with a ``substanceAdministration`` per line:

================================  ======================================================
line field                        written as
================================  ======================================================
prescription_number, placer no.   ``id`` roots 处方编号 1.20, 医嘱ID 1.28 (§5.3)
prescribed_at, duration_days      ``effectiveTime`` IVL_TS: ``low``, ``width`` in days
route                             ``routeCode/originalText`` (as sent)
dose, dose_unit                   ``doseQuantity``
dosage_form                       ``administrationUnitCode/originalText``
drug_code/_name/_system; codes    ``consumable/manufacturedProduct/
                                  manufacturedLabeledDrug``: ``code`` (as sent, the
                                  translated code as a ``translation``) and ``name``
quantity, quantity_unit           DE06.00.135.00 药物使用总剂量 (C0004 template)
frequency, duration               observations 用药频率, 用药时长: display only; the
                                  reference gives no data-element codes for them
================================  ======================================================

The prescriber of the newest line is the author; the department and the visit
number come from the lines.
"""

from __future__ import annotations

from collections.abc import Callable

from sinks.docstore.assembly.cda import (
    Node,
    add,
    data_element,
    decimal_text,
    identifier,
    section,
    timestamp,
    value,
)
from sinks.docstore.assembly.draft import DOC_TYPES, Author, Draft, Visit
from sinks.docstore.assembly.events import (
    Record,
    chronological,
    coding,
    first,
    latest_time,
    moment,
    newest,
    number,
    subject_of,
)
from sinks.docstore.assembly.oids import ORDER_OID, PRESCRIPTION_OID

__all__ = ["LINE_TIMES", "draft", "lines_of", "withdrawn"]

#: The times that order medication events, first present wins.
LINE_TIMES = ("occurred_at", "prescribed_at", "dispensed_at")


def _line_key(record: Record) -> str:
    number_ = first(record.get("placer_order_number"), record.get("filler_order_number"))
    return number_ if number_ is not None else f"drug:{first(record.get('drug_code')) or ''}"


def lines_of(records: list[Record]) -> list[Record]:
    """The prescription's lines after prescriptions, dispenses and cancellations, in order."""
    lines: dict[str, Record] = {}
    for record in chronological(records, *LINE_TIMES):
        key, action = _line_key(record), str(record.get("action") or "").strip().lower()
        if action == "cancel":
            lines.pop(key, None)
        elif action == "dispense" and key in lines and lines[key].get("action") != "dispense":
            continue
        else:
            lines[key] = record
    return chronological(lines.values(), "prescribed_at", *LINE_TIMES)


def _as_sent(parent: Node, tag: str, sent: str | None) -> None:
    if sent is not None:
        add(add(parent, tag), "originalText", sent)


def _drug(administration: Node, line: Record) -> None:
    drug = add(add(add(administration, "consumable"), "manufacturedProduct"),
               "manufacturedLabeledDrug")
    code = add(drug, "code", code=first(line.get("drug_code")),
               codeSystemName=first(line.get("drug_system")),
               displayName=first(line.get("drug_name")))
    if (translated := coding(line, "drug_code")) is not None:
        add(code, "translation", code=str(translated["code"]),
            codeSystemName=first(translated.get("system")),
            displayName=first(translated.get("display")))
    if (name := first(line.get("drug_name"))) is not None:
        add(drug, "name", name)


def _administration(medications: Node, line: Record) -> None:
    administration = add(add(medications, "entry"), "substanceAdministration",
                         classCode="SBADM", moodCode="EVN")
    if (prescription := first(line.get("prescription_number"))) is not None:
        identifier(administration, PRESCRIPTION_OID, prescription)
    if (placer := first(line.get("placer_order_number"))) is not None:
        identifier(administration, ORDER_OID, placer)
    start, days = moment(line, "prescribed_at"), line.get("duration_days")
    if start is not None or isinstance(days, int):
        period = add(administration, "effectiveTime", xsi_type="IVL_TS")
        if start is not None:
            timestamp(period, "low", start)
        if isinstance(days, int):
            add(period, "width", value=str(days), unit="d")
    _as_sent(administration, "routeCode", first(line.get("route")))
    if (dose := number(line.get("dose"))) is not None:
        add(administration, "doseQuantity", value=decimal_text(dose),
            unit=first(line.get("dose_unit")))
    _as_sent(administration, "administrationUnitCode", first(line.get("dosage_form")))
    _drug(administration, line)
    if (quantity := number(line.get("quantity"))) is not None:
        related = add(administration, "entryRelationship", typeCode="COMP")
        value(data_element(related, "DE06.00.135.00", "药物使用总剂量"), "PQ",
              value=decimal_text(quantity), unit=first(line.get("quantity_unit")))
    for display, field in (("用药频率", "frequency"), ("用药时长", "duration")):
        if (sent := first(line.get(field))) is not None:
            related = add(administration, "entryRelationship", typeCode="COMP")
            value(data_element(related, None, display), "ST", sent)


def _line_text(line: Record) -> str:
    dose = number(line.get("dose"))
    quantity = number(line.get("quantity"))
    parts = (first(line.get("drug_name"), line.get("drug_code")),
             f"{decimal_text(dose)}{first(line.get('dose_unit')) or ''}" if dose is not None
             else None,
             first(line.get("route")), first(line.get("frequency")), first(line.get("duration")),
             f"共{decimal_text(quantity)}{first(line.get('quantity_unit')) or ''}"
             if quantity is not None else None)
    return " ".join(part for part in parts if part)


def _body(lines: list[Record]) -> Callable[[Node], None]:
    def write(body: Node) -> None:
        medications = section(body, "10160-0", "HISTORY OF MEDICATION USE", "用药",
                              [_line_text(line) for line in lines])
        for line in lines:
            _administration(medications, line)
    return write


def withdrawn(records: list[Record]) -> bool:
    """Whether the prescription is withdrawn: it had events, and no line is left."""
    return bool(records) and not lines_of(records)


def draft(records: list[Record]) -> Draft | None:
    """The prescription of these medication events; None when no line is left."""
    lines = lines_of(records)
    if not lines:
        return None
    latest_line = newest(lines, "prescribed_at", *LINE_TIMES)
    effective = latest_time(lines, "prescribed_at", *LINE_TIMES)
    visit_number = first(*(line.get("visit_number") for line in lines))
    department = first(*(line.get("department") for line in lines))
    return Draft(
        doc_type=DOC_TYPES["prescription"],
        effective_time=effective,
        subject=subject_of(records),
        author=Author(first(latest_line.get("prescriber_id")),
                      first(latest_line.get("prescriber_name")),
                      moment(latest_line, "prescribed_at") or effective, department),
        body=_body(lines),
        visit=Visit(visit_number, department_name=department) if visit_number else None,
        event_ids=tuple(sorted(str(record["event_id"]) for record in records)),
    )
