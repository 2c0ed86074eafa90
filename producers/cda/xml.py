"""The one way hutong reads XML it did not write: bounded, no DTD, no entities, no file, no network.

Every XML payload a facility sends (CDA documents today, HL7 V3 messages later)
goes through :func:`parse_xml`. What it refuses, and why:

- more than ``max_bytes`` bytes: checked before the parser sees a byte;
- a document type declaration (``<!DOCTYPE``), internal subset or not: a CDA
  never needs one, and it is where XXE (external entities reading
  ``file:///etc/passwd`` or calling a URL) and entity expansion bombs ("billion
  laughs") live. The refusal comes when the root element starts, so the
  parser is also set up to be harmless before that: entities are never
  substituted (``resolve_entities=False``), no DTD is loaded or validated
  (``load_dtd=False``, ``dtd_validation=False``), no network
  (``no_network=True``), and a resolver answers every request to open an
  external DTD or entity with nothing. The resolver is what makes it certain:
  libxml2 opens the external subset and parameter entity targets whenever any
  "load subset" flag is set, and an innocent-looking option sets one
  (``collect_ids=False`` does); a FIFO named there would hang the parser;
- an XInclude element (``xi:include`` in the 2001 or 2003 namespace): lxml never
  processes one unless asked, but a CDA never needs one, and a stored document
  that carries one would attack whatever reads it later with XInclude on;
- nesting deeper than ``max_depth`` elements (counted while parsing; libxml2
  itself stops at 256, as ``huge_tree`` stays off, which also caps text nodes at
  10 MB and entity amplification);
- anything that is not well-formed XML.

Comments and processing instructions are dropped from the tree
(``remove_comments``, ``remove_pis``): hutong reads data out of the tree and
keeps the original bytes separately, and code walking children then never meets
a comment where it expects an element.

Every refusal is an :class:`~hutong.errors.HL7Error` (code 207 for size, 102
otherwise) whose reason names the cause and whose location is ``where`` with
the line and column; libxml2's own message is not passed on, since it can
quote the document.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from lxml import etree  # type: ignore[import-untyped, unused-ignore]

from hutong.errors import HL7Error

__all__ = ["DEFAULT_MAX_DEPTH", "Element", "parse_xml", "safe_parser"]

#: An element of a parsed tree.
Element: TypeAlias = etree._Element

#: Deepest element nesting accepted; WS/T 500 documents stay under 30.
DEFAULT_MAX_DEPTH = 128

#: Bytes fed to libxml2 at a time, so nesting is checked as the tree grows.
_CHUNK = 64 * 1024

#: ``<!DOCTYPE`` in the encodings an XML document can start in, to word a parse failure.
_DOCTYPE_MARKS = tuple("<!DOCTYPE".encode(codec) for codec in (
    "ascii", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"))

#: The XInclude namespaces (XInclude 1.0 and its 2003 draft, which libxml2 also honours).
_XINCLUDE = frozenset({"http://www.w3.org/2001/XInclude", "http://www.w3.org/2003/XInclude"})

#: libxml2 parser error number -> its name as words (``ERR_TAG_NAME_MISMATCH``: ``tag name
#: mismatch``; ``NS_ERR_QNAME``: ``qname``).
_ERROR_NAMES: dict[int, str] = {
    number: name.split("ERR_" if "ERR_" in name else "WAR_", 1)[1].lower().replace("_", " ")
    for name, number in vars(etree.ErrorTypes).items()
    if name.startswith(("ERR_", "NS_ERR_", "WAR_")) and isinstance(number, int)
}


class _RefuseEveryLoad(etree.Resolver):  # type: ignore[misc, unused-ignore]
    """Answers every request to load an external DTD or entity with an empty document.

    With ``load_dtd=False`` and ``resolve_entities=False`` libxml2 should ask for nothing, but
    any "load subset" flag (``collect_ids=False`` sets one) makes it open the target of a
    parameter entity used in an internal subset (``<!ENTITY % p SYSTEM "file:..."> %p;``) and
    the external subset, before the root element is reached. With this resolver no file or URL
    is opened whatever the options.
    """

    def resolve(self, url: str | None, pubid: str | None, context: Any) -> Any:
        return self.resolve_string("", context)


def safe_parser() -> etree.XMLPullParser:
    """A fresh ``XMLPullParser`` reporting start and end events, set up as described above.

    Use it only through :func:`parse_xml` unless you also refuse DOCTYPEs and bound the input.
    """
    parser = etree.XMLPullParser(
        events=("start", "end"),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        attribute_defaults=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    parser.resolvers.add(_RefuseEveryLoad())
    return parser


def _doctype_error(where: str) -> HL7Error:
    return HL7Error("XML has a document type declaration (DOCTYPE); it is not accepted",
                    location=where, code="102")


def _refuse_doctype(element: Element, where: str) -> None:
    info = element.getroottree().docinfo
    if info.doctype or info.internalDTD is not None or info.externalDTD is not None:
        raise _doctype_error(where)


def _syntax_error(exc: etree.XMLSyntaxError, where: str) -> HL7Error:
    line, column = exc.position or (0, 0)
    if line == 0:  # reported at the end, the error itself unnamed
        return HL7Error("XML is not well-formed or has no root element", location=where,
                        code="102")
    name = _ERROR_NAMES.get(exc.code, f"libxml2 error {exc.code}")
    if name == "resource limit":
        reason = ("XML exceeds a parser limit (nesting deeper than 256, entity amplification, "
                  "or a text or name too large)")
    else:
        reason = f"XML is not well-formed ({name})"
    return HL7Error(reason, location=f"{where} line {line}, column {column}", code="102")


def _check_events(parser: etree.XMLPullParser, depth: int, max_depth: int, where: str) -> int:
    for event, element in parser.read_events():
        if event == "end":
            depth -= 1
            continue
        if depth == 0:
            _refuse_doctype(element, where)
        if isinstance(element.tag, str) and element.tag[1:].split("}", 1)[0] in _XINCLUDE:
            raise HL7Error("XML has an XInclude element; it is not accepted",
                           location=f"{where} line {element.sourceline}", code="102")
        depth += 1
        if depth > max_depth:
            raise HL7Error(f"XML nests deeper than {max_depth} elements",
                           location=f"{where} line {element.sourceline}", code="102")
    return depth


def parse_xml(data: bytes, *, max_bytes: int, where: str,
              max_depth: int = DEFAULT_MAX_DEPTH) -> Element:
    """The root element of ``data``, parsed by :func:`safe_parser` within the bounds.

    ``where`` names the input in errors (``CDA document``). Raises HL7Error: code 207 when
    ``data`` is larger than ``max_bytes``, 102 for a DOCTYPE, too deep a nesting, or XML that is
    not well-formed.
    """
    if len(data) > max_bytes:
        raise HL7Error(f"XML is {len(data)} bytes, more than the {max_bytes}-byte limit",
                       location=where, code="207")
    if not data.strip():
        raise HL7Error("XML document is empty", location=where, code="102")
    parser = safe_parser()
    depth = 0
    try:
        for start in range(0, len(data), _CHUNK):
            parser.feed(data[start : start + _CHUNK])
            depth = _check_events(parser, depth, max_depth, where)
        root: Element = parser.close()
        _check_events(parser, depth, max_depth, where)
    except etree.XMLSyntaxError as exc:
        if any(mark in data for mark in _DOCTYPE_MARKS):  # failed inside the DTD, most likely
            raise _doctype_error(where) from None
        raise _syntax_error(exc, where) from None
    except etree.LxmlError:
        raise HL7Error("XML could not be parsed", location=where, code="102") from None
    _refuse_doctype(root, where)  # already refused at the root's start event; the last word
    return root
