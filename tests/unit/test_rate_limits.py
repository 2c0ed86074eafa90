"""Rate limits per facility: MLLP messages and HTTP ingest requests, each facility its own
allowance; over it, AR / 429 "resend later", a metric and an audit record, nothing stored."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from connectors.facilities import Facility, FacilityRegistry, Peer
from hutong.audit import AuditLog
from hutong.config import Settings
from hutong.hub import facility_limiter
from hutong.metrics import Metrics
from hutong.ratelimit import KeyedLimiter
from producers.hl7v2.message import Message
from producers.intake import Intake
from producers.kafka import OutRecord

NOW = datetime(2026, 11, 20, 1, 30, tzinfo=UTC)
LOCAL = ["127.0.0.0/8"]


def adt(facility: str, n: int, mode: str = "") -> bytes:
    return (f"MSH|^~\\&|HIS|{facility}|HUTONG|REGION|20261120093000||ADT^A01^ADT_A01|"
            f"{facility}-{n}|P|2.4|||{mode}\rEVN|A01|20261120093000\r"
            f"PID|1||P{n}^^^{facility}^MR||测试丁||19700101|F\rPV1|1|O\r").encode()


class Recorder:
    def __init__(self) -> None:
        self.sent: list[OutRecord] = []

    async def send(self, records: Sequence[OutRecord]) -> None:
        self.sent.extend(records)


class Setup:
    def __init__(self, tmp_path: Path, rate: float = 1.0, burst: int = 2) -> None:
        self.clock = [0.0]
        self.metrics = Metrics()
        self.recorder = Recorder()
        self.audit = AuditLog(tmp_path / "audit")
        registry = FacilityRegistry([Facility(id="A", mllp_sources=LOCAL),
                                     Facility(id="B", mllp_sources=LOCAL)])
        self.intake = Intake(self.recorder, self.metrics, registry=registry,  # type: ignore[arg-type]
                             audit=self.audit, clock=lambda: NOW,
                             rate_limit=KeyedLimiter(rate, burst, clock=lambda: self.clock[0]))

    def send(self, facility: str, n: int, mode: str = "") -> tuple[str, str, str]:
        receipt = asyncio.run(self.intake.receive(adt(facility, n, mode),
                                                  Peer("mllp", "127.0.0.1")))
        msa = Message.parse(receipt.ack.decode()).segment("MSA")
        assert msa is not None
        return receipt.code, msa.get(1), msa.get(3)

    def rejected(self, facility: str) -> float:
        return self.metrics.registry.get_sample_value(
            "hutong_facility_rejected_total", {"facility": facility,
                                               "reason": "rate_limited"}) or 0.0


def test_a_facility_over_its_rate_gets_ar_resend_later_and_nothing_is_stored(
        tmp_path: Path) -> None:
    s = Setup(tmp_path)
    answers = [s.send("A", n) for n in range(5)]
    assert [code for code, _, _ in answers] == ["AA", "AA", "AR", "AR", "AR"]
    assert "rate limit" in answers[2][2] and "resend later" in answers[2][2]
    stored = len(s.recorder.sent)
    assert s.send("B", 1)[0] == "AA"  # another facility has its own allowance
    assert len(s.recorder.sent) > stored
    assert s.rejected("A") == 3 and s.rejected("B") == 0
    throttled = [r for r in s.audit.records() if r["action"] == "intake.throttled"]
    assert len(throttled) == 3 and throttled[0]["facility"] == "A"
    s.clock[0] = 1.0  # a second later: one more message
    assert [s.send("A", n)[0] for n in (10, 11)] == ["AA", "AR"]


def test_in_enhanced_mode_the_refusal_is_a_commit_reject(tmp_path: Path) -> None:
    s = Setup(tmp_path, burst=1)
    s.send("A", 0)
    code, msa, _ = s.send("A", 1, mode="AL")
    assert (code, msa) == ("AR", "CR")


def test_http_requests_take_from_the_same_allowance(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    peer = Peer("http", "127.0.0.1", "A", "API key")
    assert [s.intake.admit(peer) for _ in range(2)] == [None, None]
    reason = s.intake.admit(peer)
    assert reason is not None and "rate limit" in reason
    assert s.send("A", 1)[0] == "AR"  # MLLP and HTTP share the facility's allowance
    assert s.intake.admit(Peer("http", "127.0.0.1", "B", "API key")) is None
    assert s.rejected("A") == 2


def test_without_a_limit_nothing_is_held_back(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    s.intake = Intake(s.recorder, s.metrics, registry=FacilityRegistry(  # type: ignore[arg-type]
        [Facility(id="A", mllp_sources=LOCAL)]), clock=lambda: NOW)
    assert {s.send("A", n)[0] for n in range(50)} == {"AA"}


def test_the_setting_is_generous_by_default_and_zero_turns_it_off() -> None:
    limiter = facility_limiter(Settings())
    assert limiter is not None and limiter.rate >= 1000 and limiter.burst >= limiter.rate
    assert facility_limiter(Settings(facility_rate_limit=0)) is None
