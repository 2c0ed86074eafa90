"""Bad input, HL7 v2: near-valid messages of every type the adapters take, then broken.

Each example starts from a message that maps cleanly, with a patient whose name,
ID card number, phone, address and record number are planted, and mutates it: a
field replaced (escapes, delimiters, huge repetitions, numbers out of range, odd
dates, control characters), segments dropped, doubled or swapped, other
delimiters, other segment endings, another MSH-18 and bytes encoded in another
character set, stray bytes. It then goes through the whole intake (adapter,
records, ACKs) with a recording producer, and every outcome must be one of:

- AA with the raw envelope and events that fit their schemas, or
- AE/AR with a dead letter whose reason names a place and a cause, never a
  patient value, and is not an "internal error" (a bug met while reading);

and every ACK must parse back, carry an MSA, and be framable over MLLP.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from connectors.facilities import Peer
from connectors.mllp.framing import FS, VT, frame
from hutong.errors import HL7Error
from hutong.metrics import Metrics
from producers.hl7v2.ack import ACK_CODES
from producers.hl7v2.adapter import MAPPERS, Arrival, adapt
from producers.hl7v2.charset import decode_message
from producers.hl7v2.escape import Delimiters, escape, unescape
from producers.hl7v2.message import Message
from producers.idcard import check_character
from producers.intake import Intake, Receipt
from producers.kafka import OutRecord
from producers.records import DLQ_TOPIC
from schemas import wire
from tests.fuzzing import PATIENT_MARK, TIMEOUT, fuzzed, hanzi, watch_rss

pytestmark = TIMEOUT

NOW = datetime(2026, 11, 20, 1, 30, tzinfo=UTC)
#: Longest reason an error may give: it goes into ACKs, Kafka headers and logs.
MAX_REASON = 300

MSH = "MSH|^~\\&|{app}|FUZZHOSP|HUTONG|REGION|20261122093000||{type}|FZ{cid}|P|{ver}|||||{cs}"
PID = "PID|1||{mrn}^^^FUZZHOSP^MR~{idcard}^^^^SFZH||{name}||19491231|M|||{addr}||{phone}"

#: One message of every (type, trigger) in the adapter's table, each mapping cleanly.
TEMPLATES: dict[str, list[str]] = {
    "oru": [MSH.format(app="LIS", type="ORU^R01^ORU_R01", cid="{cid}", ver="2.4", cs="{cs}"),
            PID, "PV1|1|O|0301^^^FUZZHOSP||||||||||||||||MZ01",
            "OBR|1|P1|F1|BCP^生化^L|||20261122090000",
            "OBX|1|NM|K^钾^L||4.1|mmol/L|3.5-5.5|N|||F|||20261122092500",
            "OBX|2|ST|COM^备注^L||{addr}||||||F", "NTE|1||{name}"],
    "pacs": [MSH.format(app="PACS", type="ORU^R01^ORU_R01", cid="{cid}", ver="2.4", cs="{cs}"),
             PID, "OBR|1|ACC1|ACC1|CT001^胸部CT平扫^L|||20261122083000||||||||||||ACC1||||"
                  "20261122090000||CT|F",
             "OBX|1|TX|&GDT^检查所见||双肺纹理清晰。{name}||||||F",
             "OBX|2|TX|&IMP^诊断意见||未见异常。||||||F"],
    "mdm": [MSH.format(app="RIS", type="MDM^T02^MDM_T02", cid="{cid}", ver="2.5.1", cs="{cs}"),
            "EVN|T02|20261122090000", PID,
            "TXA|1|RAD|TX|20261122090000||||||R01^张医生||||DOC1|||AU",
            "OBX|1|TX|&IMP^诊断意见||未见异常||||||F"],
    "adt": [MSH.format(app="HIS", type="ADT^A01^ADT_A01", cid="{cid}", ver="2.4", cs="{cs}"),
            "EVN|A01|20261122090000", PID,
            "PV1|1|I|0301^312^03||||D01^王医生|||||||||||ZY01|||||||||||||||||||||||||"
            "20261122080000",
            "DG1|1||E11.900^2型糖尿病^ICD10|||A", "DG1|2||I10.x00^高血压^ICD10|||A"],
    "adt-merge": [MSH.format(app="HIS", type="ADT^A40^ADT_A39", cid="{cid}", ver="2.4",
                             cs="{cs}"),
                  "EVN|A40|20261122090000", PID, "MRG|OLD{mrn}^^^FUZZHOSP^MR"],
    "orm": [MSH.format(app="HIS", type="ORM^O01^ORM_O01", cid="{cid}", ver="2.4", cs="{cs}"),
            PID, "ORC|NW|ORD1||||||||||D01^王医生", "OBR|1|ORD1||CT001^胸部CT平扫^L"],
    "oml": [MSH.format(app="HIS", type="OML^O21^OML_O21", cid="{cid}", ver="2.5.1", cs="{cs}"),
            PID, "ORC|NW|ORD2", "OBR|1|ORD2||BCP^生化^L"],
    "rde": [MSH.format(app="HIS", type="RDE^O11^RDE_O11", cid="{cid}", ver="2.4", cs="{cs}"),
            PID, "ORC|NW|RX1||||||||||D01^王医生",
            "RXE|^BID^D7|AMX^阿莫西林胶囊^L|0.5||g|胶囊", "RXR|PO^口服"],
    "rds": [MSH.format(app="HIS", type="RDS^O13^RDS_O13", cid="{cid}", ver="2.5.1", cs="{cs}"),
            PID, "ORC|RE|RX2", "RXD|1|AMX^阿莫西林胶囊^L|20261122100000|24|粒"],
}

#: MSH-18 values: HL7 table 0211 names, their spellings, and ones hutong does not know.
CHARSETS = ["", "UNICODE UTF-8", "UTF-8", "GB18030", "GBK", "GB 2312", "ASCII", "8859/1",
            "ISO IR58", "BIG5", "UTF-16", "KOI8-R", "\\X41\\", "^", "~~~", "8859/99"]
_CODECS = {"": "utf-8", "UNICODE UTF-8": "utf-8", "UTF-8": "utf-8", "GB18030": "gb18030",
           "GBK": "gb18030", "GB 2312": "gb18030", "ISO IR58": "gb18030", "ASCII": "ascii",
           "8859/1": "iso-8859-1", "BIG5": "big5"}

#: Other delimiter sets (field, component, repetition, escape, subcomponent).
DELIMITERS = [Delimiters(), Delimiters("#", "$", "*", "!", "@"), Delimiters("|", "^", "~", "\\",
                                                                           "&"),
              Delimiters("\t", "^", "~", "\\", "&"), Delimiters(";", ":", ",", "?", "+")]


def id_card(body: str) -> str:
    return body + check_character(body)


@dataclass(frozen=True)
class Planted:
    """The patient's values put in the message: none may appear in an error text."""

    name: str
    idcard: str
    phone: str
    addr: str
    mrn: str

    def values(self) -> list[str]:
        return [self.name, self.idcard, self.phone, self.addr, self.mrn]


planted = st.builds(
    Planted,
    name=hanzi(2, 4).map(lambda n: PATIENT_MARK + n),
    idcard=st.from_regex(r"\A[1-6][0-9]{5}(19[5-9][0-9]|20[01][0-9])(0[1-9]|1[0-2])(0[1-9]|1[0-9]|2[0-8])"
                         r"[0-9]{3}\Z").map(id_card),
    phone=st.from_regex(r"\A1[3-9][0-9]{9}\Z"),
    addr=hanzi(4, 12).map(lambda a: PATIENT_MARK + a),
    mrn=st.from_regex(r"\AMRN[0-9]{8}\Z"),
)

#: What a field is replaced with.
field_values = st.one_of(
    st.sampled_from(["", '""', "^", "~", "&", "\\", "|", "^^^^", "~~~~", "&&&&", "\\E\\", "\\F\\",
                     "\\X\\", "\\XZZ\\", "\\X0D0A\\", "\\X1C\\", "\\X0B\\", "\\XE5BC\\",
                     "\\H\\bold\\N\\", "\\.br\\", "\\Zunknown\\", "\\", "\\\\\\", "\\C2842\\",
                     "\\M2442\\", "99999999999", "-99999999999", "1e400", "nan", "inf", "-0",
                     "0.0000000001", "2024", "20241301", "20240230", "00000000", "99991231",
                     "18000101", "2024010112", "20240101120000+9999", "20240101120000.1234567",
                     "20240101120000-0000", "T", "A01", "R01", "O01", "ZZZ", "\n", "\x00",
                     "\x7f", "\u2028", "\ufeff", "\ud800", "测试", "ORU^R01", "ADT^A40",
                     "ACK", "NE", "AL", "ER", "SU", "XX", "NW", "CA", "DC", "F", "C", "X"]),
    st.text(max_size=30).map(lambda t: PATIENT_MARK + t),
    st.text(alphabet="|^~\\&#$*!@;:,?+\t\n", max_size=20),
    st.builds(lambda v, n, sep: sep.join([v] * n), st.sampled_from(["A", "1", "", "x^y"]),
              st.integers(1, 5000), st.sampled_from(["~", "^", "&", "\\X41\\"])),
    st.integers(-(2**70), 2**70).map(str),
    st.from_regex(r"\A[0-9]{1,16}\Z"),
)


@dataclass(frozen=True)
class Mutation:
    kind: str  # field | drop | double | swap | insert
    segment: int
    field: int = 0
    value: str = ""
    other: int = 0


mutations = st.one_of(
    st.builds(Mutation, st.just("field"), st.integers(0, 8), st.integers(1, 40), field_values),
    st.builds(Mutation, st.sampled_from(["drop", "double"]), st.integers(0, 8)),
    st.builds(Mutation, st.just("swap"), st.integers(0, 8), other=st.integers(0, 8)),
    st.builds(Mutation, st.just("insert"), st.integers(0, 8), value=st.sampled_from(
        ["ZZZ|1|2", "MSH|^~\\&|X|Y", "PID", "OBX|1|NM|K||5", "ORC|NW", "MRG|", "EVN|",
         "PV1|1|I", "OBR|1", "NTE|1||x", "DG1|1||A00^x^ICD10", "RXR|", "TXA|1", "MSA|AA|1",
         "abc", "   ", "PI", "PID|" * 50])),
)


def mutate(segments: list[str], mutation: Mutation) -> list[str]:
    out = list(segments)
    i = mutation.segment % len(out) if out else 0
    if mutation.kind == "field" and out:
        fields = out[i].split("|")
        n = mutation.field % (len(fields) + 3)
        fields += [""] * (n + 1 - len(fields))
        # MSH holds no patient value, and its message type may be quoted back (bounded)
        fields[n] = mutation.value.replace(PATIENT_MARK, "") if fields[0] == "MSH" else (
            mutation.value)
        out[i] = "|".join(fields)
    elif mutation.kind == "drop" and out:
        del out[i]
    elif mutation.kind == "double" and out:
        out.insert(i, out[i])
    elif mutation.kind == "swap" and out:
        j = mutation.other % len(out)
        out[i], out[j] = out[j], out[i]
    elif mutation.kind == "insert":
        out.insert(i, mutation.value)
    return out


def redelimit(text: str, d: Delimiters) -> str:
    """Standard delimiters replaced by ``d`` (the templates hold none of the others)."""
    return text.translate(str.maketrans("|^~\\&", "".join(
        (d.field, d.component, d.repetition, d.escape, d.subcomponent))))


@dataclass(frozen=True)
class Case:
    kind: str
    patient: Planted
    payload: bytes


@st.composite
def near_valid(draw: st.DrawFn) -> Case:
    kind = draw(st.sampled_from(sorted(TEMPLATES)))
    patient = draw(planted)
    charset = draw(st.sampled_from(CHARSETS))
    values = {"cid": draw(st.from_regex(r"\A[0-9]{1,6}\Z")), "cs": escape(charset),
              "name": patient.name, "idcard": patient.idcard, "phone": patient.phone,
              "addr": patient.addr, "mrn": patient.mrn}
    segments = [s.format(**values) for s in TEMPLATES[kind]]
    for mutation in draw(st.lists(mutations, max_size=4)):
        segments = mutate(segments, mutation)
    delimiters = draw(st.sampled_from(DELIMITERS))
    ending = draw(st.sampled_from(["\r", "\r", "\n", "\r\n", "\n\r"]))
    text = ending.join(redelimit(s, delimiters) for s in segments) + draw(
        st.sampled_from([ending, "", ending * 3]))
    declared = _CODECS.get(charset, "utf-8")  # mostly the bytes MSH-18 announces
    codec = draw(st.sampled_from([declared, declared, declared, "utf-8", "gb18030", "utf-16",
                                  "latin-1"]))
    payload = text.encode(codec, errors="replace") if codec != "latin-1" else text.encode(
        "latin-1", errors="replace")
    for at, stray in draw(st.lists(st.tuples(st.integers(0), st.binary(min_size=1, max_size=4)),
                                   max_size=3)):
        at %= len(payload) + 1
        if at < 3 and draw(st.integers(1, 8)) < 8:  # mostly past "MSH", to reach further
            at += 3
        payload = payload[:at] + stray + payload[at:]
    if draw(st.booleans()):
        payload = b"\xef\xbb\xbf" + payload
    return Case(kind, patient, payload)


class Recorder:
    """A producer that confirms everything and keeps what it was given."""

    def __init__(self) -> None:
        self.sent: list[OutRecord] = []

    async def send(self, records: Sequence[OutRecord]) -> None:
        self.sent.extend(records)


#: MLLP from an open intake; HTTP with the API key of the templates' facility.
PEERS = {"mllp": Peer("mllp", "127.0.0.1"),
         "http": Peer("http", "127.0.0.1", "FUZZHOSP", "API key")}


def receive(payload: bytes, transport: str = "mllp") -> tuple[Receipt, list[OutRecord]]:
    recorder = Recorder()
    intake = Intake(recorder, Metrics(), clock=lambda: NOW)  # type: ignore[arg-type]
    receipt = asyncio.run(intake.receive(payload, PEERS[transport]))
    return receipt, recorder.sent


def assert_no_value_in(text: str, patient: Planted | None, where: str) -> None:
    assert PATIENT_MARK not in text, f"a planted value in {where}: {text!r}"
    if patient is not None:
        for value in patient.values():
            assert value not in text, f"a patient value in {where}: {text!r}"


def check_outcome(payload: bytes, patient: Planted | None, transport: str = "mllp") -> Receipt:
    """The invariants every input must meet; returns the receipt for more checks."""
    receipt, sent = receive(payload, transport)
    assert receipt.code in {"AA", "AE", "AR"}
    if receipt.unauthorised:  # MSH-4 mutated away from the key's facility: audited only
        assert receipt.code == "AR" and not sent and receipt.error is not None
        assert len(receipt.error.reason) <= MAX_REASON, receipt.error.reason[:400]
        assert_no_value_in(receipt.error.reason, patient, "the reason")
    elif receipt.code == "AA":
        assert receipt.stored
        assert receipt.error is None
        assert sent[0].topic == "hutong.raw.hl7v2" or not sent  # an ACK message writes nothing
        for record in sent:
            assert record.topic != DLQ_TOPIC
    else:
        assert receipt.stored  # the dead letter was written
        error = receipt.error
        assert isinstance(error, HL7Error)
        assert not error.reason.startswith("internal error"), error.reason
        assert error.location, error.reason
        assert len(error.reason) <= MAX_REASON, error.reason[:400]
        assert_no_value_in(error.reason, patient, "the reason")
        assert sent[0].topic == DLQ_TOPIC
        letter = wire.decode(sent[0].value)[1]
        assert letter["payload"] == payload and letter["reason"] == error.reason
        for name, value in sent[0].headers:
            assert_no_value_in((value or b"").decode("utf-8", "replace"), patient, name)
    for ack in receipt.acks:
        if transport == "mllp":  # an MLLP frame holds no VT or FS, so neither does its ACK
            assert frame(ack)
        try:  # as the sender reads it: by MSH-18, else UTF-8, else GB18030
            text, _ = decode_message(ack)
        except HL7Error:  # it repeats the sender's own MSH-18, one hutong does not know
            text = ack.decode("utf-8", errors="replace")
        parsed = Message.parse(text)
        msa = parsed.segment("MSA")
        assert msa is not None and msa.get(1) in ACK_CODES
        for segment in parsed:
            if segment.name in ("MSA", "ERR"):
                shown = segment.field(3) if segment.name == "MSA" else "|".join(
                    segment.field(n) for n in range(1, 9))
                assert_no_value_in(unescape(shown, parsed.delimiters), patient, "the ACK")
        assert text.startswith("MSH")
    return receipt


def test_every_template_maps_cleanly() -> None:
    """The starting points are valid, so the mutations explore the mappers, not the MSH."""
    covered = {tuple(seg[0].split("|")[8].split("^")[:2]) for seg in TEMPLATES.values()}
    assert {kind for kind, _ in covered} == {kind for kind, _ in MAPPERS}
    assert covered <= set(MAPPERS)
    patient = Planted(PATIENT_MARK + "张三", id_card("11010519491231002"), "13800000000",
                      PATIENT_MARK + "北京市朝阳区", "MRN00000001")
    for kind, segments in TEMPLATES.items():
        text = "\r".join(s.format(cid="1", cs="UNICODE UTF-8", name=patient.name,
                                  idcard=patient.idcard, phone=patient.phone, addr=patient.addr,
                                  mrn=patient.mrn) for s in segments) + "\r"
        receipt = check_outcome(text.encode(), patient)
        assert receipt.code == "AA", (kind, receipt.reason)


@fuzzed(600)
@given(near_valid())
def test_near_valid_messages_end_in_events_or_a_located_dead_letter(case: Case) -> None:
    payload = case.payload.replace(VT, b"").replace(FS, b"")  # what an MLLP frame can hold
    check_outcome(payload, case.patient)


@fuzzed(200)
@given(near_valid())
def test_over_http_the_frame_bytes_too(case: Case) -> None:
    """HTTP ingest has no framing: VT and FS may sit inside the message."""
    check_outcome(case.payload.replace(b"\r\n", b"\r"), case.patient, transport="http")


@fuzzed(300)
@given(st.binary(max_size=3000))
@example(b"MSH|^~\xa4z\\&|HIS|\rPID|1")  # atheris: a GB18030 escape character, the ACK in GB18030
def test_arbitrary_bytes(payload: bytes) -> None:
    check_outcome(payload.replace(VT, b"").replace(FS, b""), None)


@fuzzed(300)
@given(st.text(max_size=2000).map(lambda t: "MSH" + t))
def test_tokenizer_and_decoder_raise_only_hl7_errors(text: str) -> None:
    try:
        message = Message.parse(text)
    except HL7Error as exc:
        assert exc.location
    else:
        for segment in message:
            for n in range(0, 30):
                segment.get(n, 1, 1, 1)
                segment.get(n, 3, 2, 2)
                segment.repetitions(n)
                segment.repetition_text(n, 2)
        message.content_digest()
    raw = text.encode("utf-8", "surrogatepass")
    try:
        decode_message(raw)
    except HL7Error as exc:
        assert exc.location == "MSH-18"


@fuzzed(300)
@given(st.sampled_from(DELIMITERS), st.text(max_size=200))
def test_escaping_round_trips_under_any_delimiters(d: Delimiters, value: str) -> None:
    assert unescape(escape(value, d), d) == value


# --- huge inputs: bounded time (the pytest timeout) and memory ----------------------------------

def _big(kind: str) -> bytes:
    head = TEMPLATES["oru"][0].format(cid="1", cs="UNICODE UTF-8")
    pid = PID.format(mrn="MRN1", idcard=id_card("11010519491231002"), name="张三",
                     addr="北京", phone="13800000000")
    obr, obx = "OBR|1|P1|F1|BCP^生化^L", "OBX|1|NM|K^钾^L||4.1|mmol/L|3.5-5.5|N|||F"
    if kind == "repetitions":
        body = [pid.replace("||张三", "||" + "~".join(["张三"] * 200_000)), obr, obx]
    elif kind == "segments":
        body = [pid, obr, *[obx] * 10_000]
    elif kind == "components":
        body = [pid, obr, "OBX|1|ST|K||" + "^" * 1_000_000]
    elif kind == "escapes":
        body = [pid, obr, "OBX|1|ST|K||" + "\\X4142\\" * 300_000]
    elif kind == "subcomponents":
        body = [pid.replace("MRN1", "&" * 1_000_000), obr, obx]
    else:  # a 4 MB field (the MLLP frame limit)
        body = [pid, obr, "OBX|1|TX|K||" + "测" * (4 * 1024 * 1024 // 3)]
    return ("\r".join([head, *body]) + "\r").encode()


@pytest.mark.timeout(120)  # a guard against a hang, not a speed assertion
@pytest.mark.parametrize("kind", ["repetitions", "segments", "components", "escapes",
                                  "subcomponents", "field"])
def test_huge_messages_are_answered_within_bounded_memory(kind: str) -> None:
    payload = _big(kind)
    with watch_rss() as rss:
        check_outcome(payload, None)
    # generous: the bytes, the text, the tokens and the records, each a few times over
    assert rss.growth < 30 * len(payload) + 200 * 1024 * 1024, rss


def test_adapt_alone_never_raises_on_the_campaigns_worst() -> None:
    for kind in ("repetitions", "components"):
        adapted = adapt(Arrival(_big(kind), "mllp", NOW))
        assert adapted.code in {"AA", "AE", "AR"}


@pytest.mark.parametrize("payload", [b"MSH\nPID|1||x||y", b"MSH\r\x00\x00\x00\x00\x00",
                                     "MSH\n\U00010000".encode()])
def test_a_first_line_of_just_msh_is_refused_not_an_internal_error(payload: bytes) -> None:
    """Found by the campaign: MSH-18 was read from the first line before its length was
    checked, so ``MSH`` alone on a line raised IndexError (AR "internal error")."""
    receipt = check_outcome(payload, None)
    assert receipt.code == "AR" and receipt.error is not None
    assert receipt.error.location in ("MSH-1", "MSH")


@pytest.mark.parametrize(("msh9", "msh4", "transport"), [
    ("A" * 5000 + "^R01", "FUZZHOSP", "mllp"),
    ("ADT^" + "B" * 5000, "FUZZHOSP", "mllp"),
    ("ORU\\.br\\FORGED LOG LINE^R01", "FUZZHOSP", "mllp"),
    ("ORU^R01", "F" * 5000, "http"),
    ("ORU^R01", "X\\.br\\FORGED LOG LINE", "http"),
])
def test_sender_text_quoted_in_a_reason_is_bounded_and_on_one_line(msh9: str, msh4: str,
                                                                   transport: str) -> None:
    """Found by the campaign: an unsupported MSH-9 and an MSH-4 naming another facility were
    quoted whole into the reason (ACK, dead letter header, audit, log): 5,000 characters,
    or a line break that forges a log line."""
    payload = (f"MSH|^~\\&|LIS|{msh4}|H|R|20261120093000||{msh9}|C1|P|2.4\r"
               "PID|1||M1\r").encode()
    receipt = check_outcome(payload, None, transport)
    assert receipt.code == "AR" and receipt.error is not None
    assert "\n" not in receipt.error.reason and "\r" not in receipt.error.reason
