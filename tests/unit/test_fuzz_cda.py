"""Bad input, CDA and XML: random trees, DOCTYPEs and entities through every reader of a CDA.

Four readers take a facility's XML: the CDA adapter (``map_cda``, ``adapt_cda`` in
the intake), and in the document store ``received`` (sensitivity from the codes
inside) and ``deidentify`` (a sensitive document leaving the hub). Each is fed

- random XML trees, well-formed or damaged, in the CDA vocabulary and outside it;
- a valid CDA skeleton with a planted patient and random subtrees anywhere in it;
- prologs: encodings (UTF-8, GB18030, UTF-16), BOMs, comments, processing
  instructions, and DOCTYPEs with internal entities, parameter entities and
  SYSTEM identifiers naming a canary file and a FIFO (opening the FIFO would hang).

Whatever comes in: only HutongErrors, a DOCTYPE always refused, the canary's
content never anywhere, no planted patient value in an error, and what
``deidentify`` returns is readable again and holds none of the patient's values.
The table of named hostile documents is in ``tests/unit/test_cda.py`` and, over
HTTP on a real hub, in ``tests/integration/test_bad_input.py``.
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from xml.sax.saxutils import escape as xml_escape
from xml.sax.saxutils import quoteattr

from hypothesis import given
from hypothesis import strategies as st

from connectors.facilities import Peer
from hutong.errors import HL7Error, HutongError
from hutong.metrics import Metrics
from producers.cda.adapter import adapt_cda
from producers.cda.document import map_cda
from producers.cda.xml import parse_xml
from producers.intake import Intake
from producers.kafka import OutRecord
from producers.records import DLQ_TOPIC, MAX_MESSAGE_BYTES, MAX_RECORD_BYTES
from schemas import catalog, wire
from sinks.docstore.assembly import AssemblyError, deidentify, received
from tests.fuzzing import PATIENT_MARK, TIMEOUT, fuzzed, hanzi

pytestmark = TIMEOUT

RECEIVED = datetime(2026, 11, 22, 1, 0, tzinfo=UTC)
TOPIC = "hutong.events.document"
V3 = "urn:hl7-org:v3"

_HOLD = Path(tempfile.mkdtemp(prefix="hutong-fuzz-cda-"))
atexit.register(shutil.rmtree, _HOLD, True)
#: A local file an external entity may name: its content must never come out.
CANARY = _HOLD / "canary.txt"
CANARY_TEXT = "CANARY-7f3e9a-never-read"
CANARY.write_text(CANARY_TEXT, encoding="ascii")
#: A FIFO: a parser that opened it would block, and the test would time out.
FIFO = _HOLD / "entity.fifo"
os.mkfifo(FIFO)
TARGETS = [CANARY.as_uri(), FIFO.as_uri(), str(CANARY), "http://127.0.0.1:9/x.dtd",
           "ftp://127.0.0.1/x", "\\\\127.0.0.1\\share\\x", "jar:file:///x!/y", "canary.txt"]


# --- strategies -----------------------------------------------------------------------------

CDA_TAGS = ["id", "name", "addr", "telecom", "patient", "patientRole", "recordTarget", "section",
            "text", "entry", "observation", "value", "code", "title", "effectiveTime",
            "component", "structuredBody", "author", "assignedAuthor", "assignedPerson",
            "custodian", "componentOf", "encompassingEncounter", "relatedDocument",
            "parentDocument", "setId", "versionNumber", "templateId", "participant",
            "associatedEntity", "informant", "relatedEntity", "guardian", "birthTime",
            "providerOrganization", "scopingOrganization", "confidentialityCode",
            "administrativeGenderCode", "ClinicalDocument", "paragraph", "table", "td"]
ATTRS = ["root", "extension", "code", "codeSystem", "value", "typeCode", "nullFlavor", "use",
         "displayName", "classCode", "xsi:type", "xml:lang", "ID"]

names = st.one_of(st.sampled_from(CDA_TAGS), st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_", min_size=1, max_size=8))
texts = st.one_of(
    st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=20), hanzi(0, 6),
    st.sampled_from(["", " ", "20240115", "C0002", "2.16.156.10011.2.4", "tel:13800000000",
                     "I10.x00", "F20.000", "B20", "11010519491231002X", "1", "-1",
                     "99999999999", "RPLC", "REF", "&amp;", "]]>", "\u2028", "\ufeff", "\x00",
                     "\x1b", "\ud800"]))


def rarely(draw: st.DrawFn, one_in: int) -> bool:
    """True once in ``one_in`` draws (not at the value Hypothesis starts and shrinks to)."""
    return draw(st.integers(1, one_in)) == one_in


@st.composite
def element(draw: st.DrawFn, depth: int = 0) -> str:
    tag = draw(names)
    if rarely(draw, 20):
        tag = draw(st.sampled_from(["v3:", "x:", "xml:", "xmlns:"])) + tag
    attrs = draw(st.dictionaries(st.sampled_from(ATTRS) | names, texts, max_size=3))
    attr_text = "".join(f" {name}={quoteattr(value)}" for name, value in attrs.items())
    if rarely(draw, 7):
        attr_text += draw(st.sampled_from([' xmlns="urn:hl7-org:v3"', ' xmlns="urn:other"',
                                           ' xmlns:v3="urn:hl7-org:v3"', ' xmlns:x=""',
                                           ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-'
                                           'instance"']))
    children = [] if depth >= 3 else draw(st.lists(element(depth + 1), max_size=3))
    body = xml_escape(draw(texts)) + "".join(children)
    if rarely(draw, 16):
        body += draw(st.sampled_from(["<!-- c -->", "<?pi data?>", "<![CDATA[<x>&]]>",
                                      "&#x41;", "&#0;", "&lt;", "&unknown;", "&#xD800;"]))
    return f"<{tag}{attr_text}>{body}</{tag}>" if body or draw(st.booleans()) else (
        f"<{tag}{attr_text}/>")


@st.composite
def doctype(draw: st.DrawFn) -> str:
    target = draw(st.sampled_from(TARGETS))
    declarations = draw(st.lists(st.sampled_from([
        f'<!ENTITY ext SYSTEM "{target}">',
        f'<!ENTITY % pe SYSTEM "{target}"> %pe;',
        f'<!ENTITY pub PUBLIC "-//X//Y" "{target}">',
        '<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
        '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;">',
        '<!ENTITY % local "<!ENTITY inner \'x\'>"> %local;',
        f'<!ENTITY % dtd SYSTEM "{target}"> %dtd; %send;',
        '<!ELEMENT ClinicalDocument ANY>', '<!ATTLIST id extension CDATA "default">',
        '<!ENTITY big "' + "x" * 5000 + '">',
    ]), max_size=4))
    external = draw(st.sampled_from(["", f' SYSTEM "{target}"', f' PUBLIC "-//X//Y" "{target}"']))
    subset = f" [{''.join(declarations)}]" if declarations or not external else ""
    return f"<!DOCTYPE {draw(st.sampled_from(['ClinicalDocument', 'x', 'v3:ClinicalDocument']))}" \
           f"{external}{subset}>"


@dataclass(frozen=True)
class Patient:
    name: str
    idcard: str
    phone: str
    street: str
    mrn: str

    def values(self) -> list[str]:
        return [self.name, self.idcard, self.phone, self.street, self.mrn]


patients = st.builds(
    Patient, name=hanzi(2, 4).map(lambda n: PATIENT_MARK + n),
    idcard=st.from_regex(r"\A[1-6][0-9]{16}[0-9X]\Z"),
    phone=st.from_regex(r"\A1[3-9][0-9]{9}\Z"),
    street=hanzi(4, 10).map(lambda n: PATIENT_MARK + n),
    mrn=st.from_regex(r"\AP[0-9]{8}\Z"))


def skeleton(p: Patient, extra: Sequence[str]) -> str:
    """A document that maps cleanly, with ``extra`` subtrees put in at 5 places."""
    at = [*extra, "", "", "", "", ""]
    return (
        f'<ClinicalDocument xmlns="{V3}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        '<typeId root="2.16.840.1.113883.1.3" extension="POCD_MT000040"/>'
        '<templateId root="2.16.156.10011.2.1.1.22"/>'
        '<id root="2.16.156.10011.1.1" extension="FUZZ-DOC-1"/>'
        '<code code="C0002" codeSystem="2.16.156.10011.2.4"/>'
        f"<title>门(急)诊病历</title>{at[0]}"
        '<effectiveTime value="20240115093000"/><confidentialityCode code="N"/>'
        '<recordTarget><patientRole>'
        f'<id root="2.16.156.10011.2.5.1.4" extension="{p.mrn}"/>'
        f"<addr><streetName>{p.street}</streetName><city>北京市</city></addr>"
        f'<telecom value="tel:{p.phone}"/>{at[1]}'
        f'<patient><id root="2.16.156.10011.1.3" extension="{p.idcard}"/>'
        f'<name>{p.name}</name><administrativeGenderCode code="1"/>'
        f'<birthTime value="19491231"/>{at[2]}</patient></patientRole></recordTarget>'
        '<author><assignedAuthor><id extension="D1"/><assignedPerson><name>赵医生</name>'
        "</assignedPerson></assignedAuthor></author>"
        f"<componentOf><encompassingEncounter><id extension=\"JZ{p.mrn}\"/>{at[3]}"
        "</encompassingEncounter></componentOf>"
        "<component><structuredBody><component><section>"
        f'<code code="10154-3"/><text>患者{p.name}，电话{p.phone}，住{p.street}。</text>'
        f'<entry><observation><value xsi:type="ST">反复头晕</value></observation></entry>{at[4]}'
        "</section></component></structuredBody></component></ClinicalDocument>")


@dataclass(frozen=True)
class Doc:
    payload: bytes
    patient: Patient | None
    doctyped: bool


PROLOGS = ["", '<?xml version="1.0"?>', '<?xml version="1.0" encoding="UTF-8"?>',
           '<?xml version="1.0" encoding="GB18030"?>', '<?xml version="1.0" encoding="UTF-16"?>',
           '<?xml version="1.1"?>', '<?xml version="1.0" encoding="EBCDIC-US"?>',
           '<?xml version="1.0" encoding="nonsense"?>', '<?xml-stylesheet href="x.xsl"?>']


@st.composite
def documents(draw: st.DrawFn) -> Doc:
    patient = None if rarely(draw, 4) else draw(patients)
    if patient is not None:
        body = skeleton(patient, draw(st.lists(element(2), max_size=5)))
    else:
        body = draw(element())
    prolog = draw(st.sampled_from(PROLOGS)) if rarely(draw, 3) else ""
    typed = rarely(draw, 6)
    head = prolog + (draw(doctype()) if typed else "") + draw(st.sampled_from(
        ["", "<!-- comment -->", "<?pi x?>", "\n"]))
    if typed and draw(st.booleans()):  # use the entities too
        body = body.replace("</title>", "&ext;&d;&big;</title>", 1)
    text = head + body
    codec = "utf-8"
    if "GB18030" in prolog or rarely(draw, 20):
        codec = "gb18030"
    if "UTF-16" in prolog:
        codec = draw(st.sampled_from(["utf-16", "utf-16-le", "utf-16-be"]))
    payload = text.encode(codec, errors="surrogatepass" if codec == "utf-8" else "replace")
    if rarely(draw, 6) and codec == "utf-8":
        payload = b"\xef\xbb\xbf" + payload
    strays = draw(st.lists(st.tuples(st.integers(0), st.binary(min_size=1, max_size=3)),
                           max_size=2)) if rarely(draw, 4) else []
    for at, stray in strays:
        at %= len(payload) + 1
        payload = payload[:at] + stray + payload[at:]
    return Doc(payload, patient, typed)


# --- checks ---------------------------------------------------------------------------------

def assert_clean(text: str, patient: Patient | None, where: str) -> None:
    assert CANARY_TEXT not in text, f"the canary file was read into {where}"
    assert PATIENT_MARK not in text, f"a patient value in {where}: {text!r}"
    if patient is not None:
        for value in patient.values():
            assert value not in text, f"a patient value in {where}: {text!r}"


def check_error(error: HutongError, patient: Patient | None, doctyped: bool) -> None:
    assert isinstance(error, HL7Error | AssemblyError), repr(error)
    if isinstance(error, HL7Error):
        assert error.location, error
        if doctyped and type(error) is HL7Error and error.code == "102":
            assert "DOCTYPE" in error.reason or "not well-formed" in error.reason or (
                "parser limit" in error.reason or "nests deeper" in error.reason), error.reason
    assert len(str(error)) <= 300
    assert_clean(str(error), patient, "the error")


def check_event(event: dict[str, object], doc: Doc) -> None:
    assert not doc.doctyped, "a document with a DOCTYPE was read"
    assert CANARY_TEXT.encode() not in repr(event).encode()
    wire.encode(catalog.for_topic(TOPIC), event)


@fuzzed(300)
@given(documents())
def test_the_cda_adapter_reads_or_refuses_with_a_located_reason(doc: Doc) -> None:
    try:
        events = map_cda(doc.payload, facility_id="FUZZ", received_at=RECEIVED)
    except HutongError as exc:
        check_error(exc, doc.patient, doc.doctyped)
        return
    check_event(events[0], doc)


@fuzzed(300)
@given(documents())
def test_the_document_store_readers_never_fail_otherwise(doc: Doc) -> None:
    record = {"document_id": "2.16.156.10011.1.1^FUZZ", "content": doc.payload,
              "content_sha256": hashlib.sha256(doc.payload).hexdigest(),
              "document_type_code": "C0002", "facility_id": "FUZZ", "event_id": "E1",
              "occurred_at": RECEIVED}
    stored = received(record)  # reads the codes inside for sensitivity; never the entities
    assert stored.content == doc.payload
    try:
        cleaned = deidentify(doc.payload)
    except HutongError as exc:
        check_error(exc, doc.patient, doc.doctyped)
        return
    assert not doc.doctyped, "a document with a DOCTYPE was de-identified"
    assert parse_xml(cleaned, max_bytes=len(cleaned) + 1, where="again").tag == f"{{{V3}}}" \
        "ClinicalDocument"
    text = cleaned.decode("utf-8")
    assert CANARY_TEXT not in text
    if doc.patient is not None:
        for value in (doc.patient.name, doc.patient.idcard, doc.patient.phone,
                      doc.patient.street, doc.patient.mrn):
            assert value not in text, "a patient value left in a de-identified document"


class Recorder:
    def __init__(self) -> None:
        self.sent: list[OutRecord] = []

    async def send(self, records: Sequence[OutRecord]) -> None:
        self.sent.extend(records)


@fuzzed(150)
@given(documents())
def test_over_the_intake_each_document_is_events_or_a_dead_letter(doc: Doc) -> None:
    recorder = Recorder()
    intake = Intake(recorder, Metrics(), clock=lambda: RECEIVED)  # type: ignore[arg-type]
    receipt = asyncio.run(intake.receive_content(
        doc.payload, Peer("http", "127.0.0.1", "FUZZ", "API key"), adapt_cda))
    assert receipt.stored and receipt.acks == ()
    if receipt.code == "AA":
        assert not doc.doctyped
        assert [r.topic for r in recorder.sent] == ["hutong.raw.cda", TOPIC]
        return
    assert receipt.code in {"AE", "AR"} and receipt.error is not None
    assert not receipt.error.reason.startswith("internal error"), receipt.error.reason
    check_error(receipt.error, doc.patient, doc.doctyped)
    assert recorder.sent[0].topic == DLQ_TOPIC
    letter = wire.decode(recorder.sent[0].value)[1]
    assert letter["payload"] == doc.payload and letter["location"]


def test_a_document_whose_event_outgrows_a_kafka_record_is_a_dead_letter() -> None:
    """Found by the campaign: the event carries the document and the header values read from
    it, so a document under the size limit with a large title made a record Kafka refuses:
    HTTP 503 "resend" for ever and no dead letter. Now AE with a dead letter naming why."""
    fixture = (Path(__file__).parents[1] / "fixtures" / "cda" / "C0002-outpatient.xml")
    text = fixture.read_text(encoding="utf-8")
    big = text.replace("<title>门(急)诊病历</title>", "<title>" + "x" * (4 * 1024 * 1024)
                       + "</title><!--" + "y" * (3 * 1024 * 1024) + "-->").encode()
    assert len(big) < MAX_MESSAGE_BYTES
    recorder = Recorder()
    intake = Intake(recorder, Metrics(), clock=lambda: RECEIVED)  # type: ignore[arg-type]
    receipt = asyncio.run(intake.receive_content(
        big, Peer("http", "127.0.0.1", "FUZZ", "API key"), adapt_cda))
    assert receipt.code == "AE" and receipt.stored and receipt.error is not None
    assert "too large to store" in receipt.error.reason
    assert receipt.error.location == TOPIC
    assert [r.topic for r in recorder.sent] == [DLQ_TOPIC, "hutong.raw.cda"]
    assert all(len(r.value) <= MAX_RECORD_BYTES for r in recorder.sent)


# --- one safe parser --------------------------------------------------------------------------

SOURCE_PACKAGES = ("schemas", "connectors", "producers", "streams", "sinks", "hutong")
#: The one module that may make an lxml parser or call one.
SAFE_PARSER = Path("producers/cda/xml.py")
#: lxml and standard-library names that parse XML (or make something that does).
PARSING = frozenset({"XMLParser", "XMLPullParser", "HTMLParser", "ETCompatXMLParser",
                     "fromstring", "fromstringlist", "XML", "XMLID", "XMLDTDID", "HTML",
                     "parse", "iterparse", "iterwalk", "XSLT", "XInclude", "DTD", "XMLSchema",
                     "RelaxNG", "Schematron", "parseString", "parseid"})
#: Modules that parse XML without the safe parser's settings; none may be imported.
UNSAFE_MODULES = ("xml.etree", "xml.dom", "xml.sax", "xml.parsers", "lxml.objectify",
                  "lxml.html", "lxml.isoschematron", "defusedxml", "xmltodict", "bs4")


def _violations(path: Path, root: Path) -> list[str]:
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    where = path.relative_to(root)
    found: list[str] = []
    lxml_names: set[str] = set()  # names bound to lxml or lxml.etree in this module
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(UNSAFE_MODULES):
                    found.append(f"{where}:{node.lineno} imports {alias.name}")
                if alias.name in ("lxml", "lxml.etree"):
                    lxml_names.add((alias.asname or alias.name).split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.module:
            module = node.module
            for alias in node.names:
                full = f"{module}.{alias.name}"
                if module.startswith(UNSAFE_MODULES) or full.startswith(UNSAFE_MODULES):
                    found.append(f"{where}:{node.lineno} imports {full}")
                elif module == "lxml" and alias.name == "etree":
                    lxml_names.add(alias.asname or "etree")
                elif module == "lxml.etree" and alias.name in PARSING and where != SAFE_PARSER:
                    found.append(f"{where}:{node.lineno} imports lxml.etree.{alias.name}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in PARSING and where != SAFE_PARSER:
            base = node.value
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name) and base.id in lxml_names:
                found.append(f"{where}:{node.lineno} uses lxml's {node.attr}")
    return found


def test_every_xml_parse_goes_through_the_one_safe_parser(tmp_path: Path) -> None:
    """No lxml parser, fromstring or parse outside producers/cda/xml.py, and no other XML
    library at all: whatever hutong reads as XML is read with entities off, no DTD, no
    network, bounded."""
    root = Path(__file__).parents[2]
    files = [path for package in SOURCE_PACKAGES for path in (root / package).rglob("*.py")]
    assert len(files) > 100 and root / SAFE_PARSER in files
    violations = [v for path in files for v in _violations(path, root)]
    assert violations == []
    # the check itself catches what it is for
    probe = tmp_path / "producers" / "probe.py"
    probe.parent.mkdir()
    probe.write_text("from lxml import etree as ET\nimport xml.dom.minidom\n"
                     "ET.fromstring(b'<a/>')\nET.XMLParser(resolve_entities=True)\n",
                     encoding="utf-8")
    assert len(_violations(probe, tmp_path)) == 3


def test_an_unknown_element_in_record_target_is_masked_too() -> None:
    """Found by the campaign: de-identification masked the identity elements it knew by name
    (id, name, addr, telecom), so a facility's own element in recordTarget (here a
    misspelled telecom) kept the phone number, and the phone stayed in the free text too."""
    patient = Patient(PATIENT_MARK + "张三", "110105194912310021", "13912345678",
                      PATIENT_MARK + "建国路", "P00000001")
    document = skeleton(patient, []).replace(
        f'<telecom value="tel:{patient.phone}"/>',
        f'<mobile value="tel:{patient.phone}"/><patientType><patienttypeCode code="3"/>'
        '</patientType>')
    cleaned = deidentify(document.encode()).decode()
    for value in patient.values():
        assert value not in cleaned
    assert '<patienttypeCode code="3"/>' in cleaned  # what identifies nobody stays
    assert '<administrativeGenderCode code="1"/>' in cleaned
