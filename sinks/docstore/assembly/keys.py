"""Which document groups an event belongs to, and the ids a group's documents get.

=================  ==========================================================  ========
event              group key                                                   document
=================  ==========================================================  ========
lab-result         ``lab:{facility}:{filler or placer order number}:``: one    检验报告
                   report per order, so a correction (OBX-11 ``C``) or the
                   final results in a later message are versions of it;
                   ``lab:{facility}::{message control id}`` for results
                   with neither number
imaging-report     ``imaging:{facility}:{accession number or message control   检查报告
                   id}``: corrections of a report join its group
medication         ``rx:{facility}:{prescription number or placer order        西药处方
                   number or message control id}``
encounter,         ``visit:{facility}:{visit number}`` (none without a visit   门(急)诊病历,
diagnosis          number)                                                     出院小结
document           none: a received CDA is stored by :func:`~.received`
anything else      none
=================  ==========================================================  ========

A medication ``cancel`` line keeps its group: assembling the prescription again
drops the cancelled line (:mod:`.prescription`), which a skipped event could not
do. Where a key's identifying numbers are all missing, the ``event_id`` stands
in, so unrelated events never share a group (``lab:F001::MSG1`` is still one
report: the results of one message with no order number).

``%`` and ``:`` inside a part are written ``%25`` and ``%3A``, so a facility or
number containing a colon cannot make two groups' keys equal; a NUL, which
PostgreSQL text cannot hold, is written ``%00``. A key longer than
:data:`MAX_KEY_LENGTH` characters (an HIS sending a visit number of a kilobyte)
is an AssemblyError: the event is a dead letter, not a row the database cannot
index.

Ids: a group makes documents of one kind, except a visit, which can make an
outpatient or emergency record (门(急)诊病历) and, once admitted and discharged,
a discharge summary (出院小结): two documents, neither replacing the other. So
the ``set_id`` is per group and kind (:data:`KINDS`): ``{prefix}-{uuid5}``
(``lab-…``, ``imaging-…``, ``rx-…``, ``visit-…``), the UUIDv5 of
``{kind}|{group key}`` in :data:`DOCUMENT_NAMESPACE`; the ``document_id`` of
version 1 is the set id, of version *n* ``{set_id}-v{n}``. Changing the
namespace or the key layout changes every document id: don't. (The layout
changed once, before the document store first shipped: lab keys lost the
message control id and set ids gained the kind.)
"""

from __future__ import annotations

import uuid
from typing import Any

from hutong.errors import HutongError
from producers.ids import HUTONG_NAMESPACE

__all__ = ["DOCUMENT_NAMESPACE", "GROUP_PREFIXES", "KINDS", "MAX_KEY_LENGTH", "AssemblyError",
           "document_id_of", "group_keys", "prefix_of", "set_id_of"]

#: uuid5(HUTONG_NAMESPACE, "documents.hutong"), fixed forever.
DOCUMENT_NAMESPACE = uuid.uuid5(HUTONG_NAMESPACE, "documents.hutong")

#: Group key prefixes, by the schema whose events open such a group.
GROUP_PREFIXES = {"lab-result": "lab", "imaging-report": "imaging", "medication": "rx",
                  "encounter": "visit", "diagnosis": "visit"}

#: The kinds of document each group prefix makes (a set of versions each).
KINDS = {"lab": ("lab-report",), "imaging": ("imaging-report",), "rx": ("prescription",),
         "visit": ("outpatient-record", "discharge-summary")}

#: Longest group key taken (characters): well inside what a database index entry holds.
MAX_KEY_LENGTH = 512


class AssemblyError(HutongError):
    """A group key, version or received document that assembly cannot use.

    The message names the cause, never a patient's values.
    """


def _part(raw: Any) -> str:
    text = "" if raw is None else str(raw).strip()
    return text.replace("%", "%25").replace(":", "%3A").replace("\x00", "%00")


def _first(record: dict[str, Any], *fields: str) -> str:
    for name in fields:
        if (found := _part(record.get(name))):
            return found
    return ""


def group_keys(schema_name: str, record: dict[str, Any]) -> list[str]:
    """The document groups this std event contributes to; ``[]`` when none (see above)."""
    keys = _keys(schema_name, record)
    if any(len(key) > MAX_KEY_LENGTH for key in keys):
        raise AssemblyError(f"the {schema_name} event's document group key is too long "
                            f"(over {MAX_KEY_LENGTH} characters: facility, order or visit "
                            "number)")
    return keys


def _keys(schema_name: str, record: dict[str, Any]) -> list[str]:
    prefix = GROUP_PREFIXES.get(schema_name)
    if prefix is None:
        return []
    facility = _part(record.get("facility_id"))
    own = _part(record.get("event_id"))
    if prefix == "lab":
        order = _first(record, "filler_order_number", "placer_order_number")
        if order:
            return [f"lab:{facility}:{order}:"]
        return [f"lab:{facility}::{_first(record, 'message_control_id') or own}"]
    if prefix == "imaging":
        study = _first(record, "accession_number", "message_control_id")
        return [f"imaging:{facility}:{study or own}"]
    if prefix == "rx":
        number = _first(record, "prescription_number", "placer_order_number",
                        "message_control_id")
        return [f"rx:{facility}:{number or own}"]
    visit = _first(record, "visit_number")
    return [f"visit:{facility}:{visit}"] if visit else []


def prefix_of(group_key: str) -> str:
    """The kind part of a group key (``lab``); AssemblyError when it is none of hutong's."""
    prefix = group_key.split(":", 1)[0]
    if ":" not in group_key or prefix not in GROUP_PREFIXES.values():
        raise AssemblyError("group key prefix is not one of "
                            f"{', '.join(sorted(set(GROUP_PREFIXES.values())))}")
    return prefix


def set_id_of(group_key: str, kind: str) -> str:
    """The set id every version of the group's document of ``kind`` shares."""
    prefix = prefix_of(group_key)
    if kind not in KINDS[prefix]:
        raise AssemblyError(f"a {prefix} group makes no document of kind {kind!r}")
    return f"{prefix}-{uuid.uuid5(DOCUMENT_NAMESPACE, f'{kind}|{group_key}')}"


def document_id_of(set_id: str, version_number: int) -> str:
    """``set_id`` for version 1, ``{set_id}-v{n}`` for version n (n >= 1)."""
    if version_number < 1:
        raise AssemblyError(f"version_number must be 1 or more, got {version_number}")
    return set_id if version_number == 1 else f"{set_id}-v{version_number}"
