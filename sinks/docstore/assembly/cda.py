"""Building blocks of the CDA hutong writes: elements in the HL7 V3 namespace and data types.

Everything here is deterministic: attributes are written in the order given,
times are written in China Standard Time (UTC+8, the zone every facility of the
platform is in), numbers in plain decimal notation. A naive datetime is read as
Asia/Shanghai, as the HL7 v2 parser does (``producers.hl7v2.types.DEFAULT_TZ``).

Text and attribute values lose the characters XML 1.0 forbids (C0 controls other
than tab, newline and carriage return, lone surrogates, U+FFFE and U+FFFF): an
HIS that lets ``\x01`` into a diagnosis name must not make its visit impossible
to write. Nothing else is changed.

A document is built as a tree of :class:`Node` and written out once
(:func:`serialize`), byte for byte as lxml writes the same tree (a test holds the
two equal on random trees): a stored document assembled again from the same
parts must give the same bytes, or the sink would take it for new content. The
tree is the sink's own because lxml's ``SubElement`` was most of the assembly's
cost, about 100 elements a lab report (``docs/performance.md``).

Data elements are observations coded from the 卫生信息数据元目录
(2.16.156.10011.2.2.1). Where neither the reference nor the WS/T 500 template it
was read from gives a data-element code for a value, the observation's ``code``
carries only a ``displayName``, as the templates themselves do for some sections
(检查报告, 检验报告): hutong does not make codes up.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from sinks.docstore.assembly.oids import DATA_ELEMENT_SYSTEM, LOINC_SYSTEM

__all__ = ["V3", "XSI", "Node", "add", "data_element", "decimal_text", "identifier",
           "new_root", "section", "serialize", "time_text", "timestamp", "value", "xml_text"]

V3 = "urn:hl7-org:v3"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
_CHINA = ZoneInfo("Asia/Shanghai")
_FORBIDDEN = "[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
#: What XML 1.0 does not allow in a document (its production ``Char``, complemented).
_NOT_XML = re.compile(_FORBIDDEN)
#: Text that is not written as it is: escaped, or with characters left out.
_TEXT_SPECIAL = re.compile(f"[&<>\r]|{_FORBIDDEN}")
_VALUE_SPECIAL = re.compile(f"[&<>\"\t\n\r]|{_FORBIDDEN}")


def xml_text(text: str) -> str:
    """``text`` without the characters XML 1.0 forbids."""
    return _NOT_XML.sub("", text)


def _escaped_text(text: str) -> str:
    """Element text as lxml (libxml2) writes it: ``& < >`` and carriage return escaped."""
    if _TEXT_SPECIAL.search(text) is None:
        return text
    return (xml_text(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("\r", "&#13;"))


def _escaped_value(value: str) -> str:
    """An attribute value as lxml writes it: also ``"`` and tab, newline, carriage return."""
    if _VALUE_SPECIAL.search(value) is None:
        return value
    return (xml_text(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("\t", "&#9;").replace("\n", "&#10;")
            .replace("\r", "&#13;"))


class Node:
    """An element of a document being written: its start tag, already written out
    (``<tag a="1"``), its text, already escaped, and its children."""

    __slots__ = ("children", "start", "tag", "text")

    def __init__(self, tag: str, start: str, text: str | None) -> None:
        self.tag = tag
        self.start = start
        self.text = text
        self.children: list[Node] = []


def new_root(tag: str) -> Node:
    """A root element in the V3 namespace, declaring ``xsi``."""
    return Node(tag, f'<{tag} xmlns="{V3}" xmlns:xsi="{XSI}"', None)


def add(parent: Node, tag: str, text: str | None = None, **attributes: str | None) -> Node:
    """A child ``tag`` of ``parent``; attributes that are None are left out.

    ``xsi_type`` is written as ``xsi:type``; text and values go through :func:`xml_text`.
    """
    start = "<" + tag
    for name, setting in attributes.items():
        if setting is not None:
            start += (f' {"xsi:type" if name == "xsi_type" else name}='
                      f'"{_escaped_value(setting)}"')
    child = Node(tag, start, None if text is None else _escaped_text(text))
    parent.children.append(child)
    return child


def time_text(moment: datetime | date) -> str:
    """An HL7 TS: ``YYYYMMDDHHMMSS+0800`` for a datetime, ``YYYYMMDD`` for a date."""
    if not isinstance(moment, datetime):
        return moment.strftime("%Y%m%d")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_CHINA)
    return moment.astimezone(_CHINA).strftime("%Y%m%d%H%M%S%z")


def timestamp(parent: Node, tag: str, moment: datetime | date | None) -> Node:
    """A TS element: ``value`` when known, else ``nullFlavor="UNK"``."""
    if moment is None:
        return add(parent, tag, nullFlavor="UNK")
    return add(parent, tag, value=time_text(moment))


def identifier(parent: Node, root: str, extension: str | None, tag: str = "id") -> Node:
    """An II: ``root`` and ``extension``, or ``nullFlavor="UNK"`` without an extension."""
    if not extension:
        return add(parent, tag, nullFlavor="UNK")
    return add(parent, tag, root=root, extension=extension)


def decimal_text(number: float) -> str:
    """A number in plain decimal notation (``1e-05`` is written ``0.00001``)."""
    text = format(Decimal(repr(float(number))).normalize(), "f")
    return "0" if text in ("-0", "") else text


def value(parent: Node, xsi_type: str, text: str | None = None,
          **attributes: str | None) -> Node:
    """A ``value`` element of the given data type."""
    return add(parent, "value", text, xsi_type=xsi_type, **attributes)


def data_element(parent: Node, code: str | None, display: str) -> Node:
    """An ``observation`` (OBS, EVN) coded with data element ``code`` (None: display only)."""
    observation = add(parent, "observation", classCode="OBS", moodCode="EVN")
    if code is None:
        add(observation, "code", displayName=display)
    else:
        add(observation, "code", code=code, codeSystem=DATA_ELEMENT_SYSTEM,
            codeSystemName="卫生信息数据元目录", displayName=display)
    return observation


def section(body: Node, loinc: str | None, display: str, title: str,
            lines: Iterable[str]) -> Node:
    """A ``component/section`` of ``body`` coded ``loinc``, titled, with a narrative list.

    Entries are added to the returned section by the caller, after the narrative.
    """
    element = add(add(body, "component"), "section")
    if loinc is None:
        add(element, "code", displayName=display)
    else:
        add(element, "code", code=loinc, codeSystem=LOINC_SYSTEM, codeSystemName="LOINC",
            displayName=display)
    add(element, "title", title)
    narrative = add(element, "text")
    items = [line for line in lines if line]
    if items:
        listing = add(narrative, "list")
        for line in items:
            add(listing, "item", line)
    return element


def serialize(root: Node) -> bytes:
    """The document as UTF-8 bytes with an XML declaration, not pretty-printed."""
    out = ["<?xml version='1.0' encoding='UTF-8'?>\n"]
    _write(root, out)
    return "".join(out).encode()


def _write(node: Node, out: list[str]) -> None:
    if node.children:
        out.append(f"{node.start}>{node.text or ''}")
        for child in node.children:
            _write(child, out)
        out.append(f"</{node.tag}>")
    elif node.text is None:
        out.append(node.start + "/>")
    else:
        out.append(f"{node.start}>{node.text}</{node.tag}>")
