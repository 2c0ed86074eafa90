"""The CDA writer (``sinks.docstore.assembly.cda``) writes what lxml writes, byte for byte.

It must: a document stored by an earlier hub (which built it with lxml) and assembled
again from the same parts must come out the same, or the document sink would take it
for new content and write a version 2 of it. The reference here is lxml building the
same tree the way the writer's functions did before they had their own tree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from sinks.docstore.assembly.cda import V3, XSI, Node, add, new_root, serialize, xml_text

#: What XML escapes or forbids, and what lies at the edges of what it allows.
_AWKWARD = ["&", "<", ">", '"', "'", "\r", "\n", "\t", "]]>", "&amp;", "\x00", "\x01", "\x1f",
            "\ud800", "\udfff", "\ufffe", "\uffff", "\ue000", "\ufffd", "𝄞", "中", " ", ""]
_TEXT = st.lists(st.one_of(st.sampled_from(_AWKWARD), st.text(max_size=4)), max_size=5).map(
    "".join)
_TAGS = st.sampled_from(["title", "code", "value", "entry", "section"])
_ATTRIBUTES = st.dictionaries(st.sampled_from(["code", "displayName", "xsi_type", "value",
                                                "nullFlavor"]),
                              st.one_of(st.none(), _TEXT), max_size=4)


@dataclass
class Spec:
    tag: str
    text: str | None
    attributes: dict[str, str | None]
    children: list[Spec] = field(default_factory=list)


_SPECS = st.recursive(
    st.builds(Spec, _TAGS, st.one_of(st.none(), _TEXT), _ATTRIBUTES),
    lambda children: st.builds(Spec, _TAGS, st.one_of(st.none(), _TEXT), _ATTRIBUTES,
                               st.lists(children, max_size=3)),
    max_leaves=12)


def _written(spec: Spec) -> bytes:
    def build(parent: Node, spec: Spec) -> None:
        child = add(parent, spec.tag, spec.text, **spec.attributes)
        for grandchild in spec.children:
            build(child, grandchild)

    root = new_root("ClinicalDocument")
    build(root, spec)
    return serialize(root)


def _by_lxml(spec: Spec) -> bytes:
    def build(parent: etree._Element, spec: Spec) -> None:
        child = etree.SubElement(parent, f"{{{V3}}}{spec.tag}", {
            f"{{{XSI}}}type" if name == "xsi_type" else name: xml_text(setting)
            for name, setting in spec.attributes.items() if setting is not None})
        if spec.text is not None:
            child.text = xml_text(spec.text)
        for grandchild in spec.children:
            build(child, grandchild)

    root = etree.Element(f"{{{V3}}}ClinicalDocument", nsmap={None: V3, "xsi": XSI})
    build(root, spec)
    content: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return content


@given(_SPECS)
def test_the_writer_writes_what_lxml_writes(spec: Spec) -> None:
    assert _written(spec) == _by_lxml(spec)


def test_escapes_and_empty_elements_as_lxml_writes_them() -> None:
    root = new_root("ClinicalDocument")
    add(root, "title", 'a&b<c>d"e\r\n\tf\x01', displayName='a&b<c>d"e\r\n\tf\x01')
    add(root, "code", "")
    add(add(root, "component"), "section", nullFlavor="UNK", code=None)
    assert serialize(root) == (
        b"<?xml version='1.0' encoding='UTF-8'?>\n"
        b'<ClinicalDocument xmlns="urn:hl7-org:v3" '
        b'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        b'<title displayName="a&amp;b&lt;c&gt;d&quot;e&#13;&#10;&#9;f">'
        b'a&amp;b&lt;c&gt;d"e&#13;\n\tf</title>'
        b"<code></code><component><section nullFlavor=\"UNK\"/></component>"
        b"</ClinicalDocument>")
