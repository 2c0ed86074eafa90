"""Coverage-guided fuzzing (atheris, libFuzzer) of the parsers the bad-input campaign covers.

    .venv/bin/python -m tests.fuzz.atheris_targets TARGET [libFuzzer options]

TARGET is ``mllp``, ``hl7``, ``cda``, ``json``, or ``all`` (the first byte picks one of
the four, so one process fuzzes them all). Each reads libFuzzer's bytes the way the
matching Hypothesis property does (``tests/unit/test_fuzz_*.py``) and checks the same
invariants, so a crash here is a failed property there. The parsers are instrumented.
The corpus is the directory given, else ``$TMPDIR/hutong-atheris/TARGET`` (kept between
runs, so a long run builds on the last); an empty one gets seeds first (the fuzz
templates, the CDA fixtures). CI runs ``all`` for a few thousand inputs
(``tests/unit/test_fuzz_atheris.py``); a longer local run::

    .venv/bin/python -m tests.fuzz.atheris_targets hl7 -max_total_time=600

A crashing input is written to ``crash-<sha1>`` in the working directory; replay it
with the same command and the file name as the only option.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import atheris  # type: ignore[import-not-found, unused-ignore]

with atheris.instrument_imports():
    import sinks.docstore.assembly.deidentify  # noqa: F401

from connectors.mllp.framing import FS, VT, FrameDecoder
from hutong.errors import HutongError
from producers.cda.document import map_cda
from sinks.docstore.assembly import deidentify
from tests.unit import test_fuzz_hl7, test_fuzz_json, test_fuzz_mllp

FIXTURES = Path(__file__).parents[1] / "fixtures" / "cda"


def mllp(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    limit = provider.ConsumeIntInRange(1, 4096)
    cuts = [provider.ConsumeIntInRange(0, 1 << 16) for _ in range(provider.ConsumeIntInRange(0, 8))]
    stream = provider.ConsumeBytes(atheris.ALL_REMAINING)
    expected = test_fuzz_mllp.normalised(test_fuzz_mllp.model(stream, limit), limit)
    got = test_fuzz_mllp.run(FrameDecoder(limit), test_fuzz_mllp.split(stream, cuts))
    assert test_fuzz_mllp.normalised(got, limit) == expected


def hl7(data: bytes) -> None:
    test_fuzz_hl7.check_outcome(data.replace(VT, b"").replace(FS, b""), None)


def cda(data: bytes) -> None:
    for read in (lambda d: map_cda(d, facility_id="FUZZ", received_at=test_fuzz_hl7.NOW),
                 deidentify):
        try:
            read(data)
        except HutongError as exc:
            assert len(str(exc)) <= 300


def json_(data: bytes) -> None:
    test_fuzz_json.check(data)


TARGETS: dict[str, Callable[[bytes], None]] = {"mllp": mllp, "hl7": hl7, "cda": cda,
                                               "json": json_}
_EACH = list(TARGETS.values())


def all_(data: bytes) -> None:
    if data:
        _EACH[data[0] % len(_EACH)](data[1:])


TARGETS["all"] = all_


def seeds(target: str) -> list[bytes]:
    if target == "all":
        return [bytes([n]) + seed for n, name in enumerate(TARGETS) if name != "all"
                for seed in seeds(name)]
    if target == "hl7":
        return ["\r".join(s.format(cid="1", cs="UNICODE UTF-8", name="张三",
                                   idcard="11010519491231002X", phone="13800000000",
                                   addr="北京", mrn="MRN1") for s in segments).encode()
                for segments in test_fuzz_hl7.TEMPLATES.values()]
    if target == "cda":
        return [path.read_bytes() for path in sorted(FIXTURES.glob("*.xml"))]
    if target == "json":
        return [b'{"message_id": "M-1", "events": [{"event_type": "lab-result", "patient": '
                b'{"source_patient_id": "J1", "birth_date": "1980-01-01"}, "occurred_at": '
                b'"2026-11-22T09:30:00+08:00", "set_id": 1, "test_code": "GLU", '
                b'"value_type": "NM", "value": "5.6"}]}']
    return [b"\x00\x04" + VT + b"MSH|^~\\&|A|B\r" + FS + b"\r" + VT + b"x" * 300]


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1] not in TARGETS:
        raise SystemExit(f"usage: {argv[0]} {{{','.join(TARGETS)}}} [libFuzzer options]")
    target, options = argv[1], argv[2:]
    given = [Path(option) for option in options if not option.startswith("-")]
    if not given:
        given = [Path(tempfile.gettempdir()) / "hutong-atheris" / target]
        given[0].mkdir(parents=True, exist_ok=True)
        options.append(str(given[0]))
    corpus = given[0]
    if corpus.is_dir() and not any(corpus.iterdir()):
        for n, seed in enumerate(seeds(target)):
            (corpus / f"seed-{n}").write_bytes(seed)
    atheris.Setup([argv[0], *options], TARGETS[target])
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
