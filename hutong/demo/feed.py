"""The bundled sample feed: generated lab results from three fictional facilities.

Nobody in it is a real person: names are drawn from common characters, ID
numbers are built on a made-up sequence with a correct GB 11643 check
character (one deliberately wrong, to show the data-quality warning), and one
message per facility is broken on purpose to show a NAK and a dead letter.

The three facilities serve one county, so some residents have results at two
or three of them, each under that facility's own patient number; the township
clinic often leaves the ID card out. The master index links them to one
person each (the demo's summary counts them).

Regenerate with ``python -m hutong.demo.feed`` (deterministic).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

__all__ = ["FACILITIES", "Facility", "generate", "write_feeds"]

FEED_DIR = Path(__file__).with_name("feeds")
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华"

# (local code, name, unit, reference range, low, high, decimals)
_TESTS = [
    ("K", "钾", "mmol/L", "3.5-5.5", 3.0, 6.9, 1),
    ("NA", "钠", "mmol/L", "137-147", 128.0, 152.0, 0),
    ("GLU", "葡萄糖", "mmol/L", "3.9-6.1", 2.1, 16.0, 1),
    ("CREA", "肌酐", "umol/L", "44-133", 40.0, 420.0, 0),
    ("WBC", "白细胞计数", "10^9/L", "3.5-9.5", 1.2, 18.0, 1),
    ("HGB", "血红蛋白", "g/L", "115-150", 55.0, 170.0, 0),
]


@dataclass(frozen=True)
class Facility:
    facility_id: str
    name: str
    application: str
    version: str
    charset: str  # MSH-18 value; "" means UTF-8 without saying so
    encoding: str


FACILITIES = [
    Facility("QSXRMYY", "清水县人民医院 (fictional)", "LIS", "2.4", "UNICODE UTF-8", "utf-8"),
    Facility("QSXZYY", "清水县中医院 (fictional)", "LIS", "2.5.1", "", "utf-8"),
    Facility("HHXWSY", "河湖乡卫生院 (fictional)", "LIS", "2.4", "GB 18030-2000", "gb18030"),
]


def _id_card(rng: random.Random, birth: datetime, male: bool) -> str:
    seq = rng.randrange(10, 99) * 10 + (rng.choice((1, 3, 5, 7, 9)) if male
                                        else rng.choice((0, 2, 4, 6, 8)))
    body = f"990101{birth:%Y%m%d}{seq:03d}"  # 99xxxx: an address code no region has
    total = sum(int(d) * w for d, w in zip(body, _WEIGHTS, strict=True))
    return body + _CHECK[total % 11]


@dataclass(frozen=True)
class Resident:
    name: str
    male: bool
    birth: datetime
    id_card: str
    village: int
    phone: str


def _residents(rng: random.Random, count: int) -> list[Resident]:
    people = []
    for _ in range(count):
        male = rng.random() < 0.5
        birth = datetime(1940, 1, 1) + timedelta(days=rng.randrange(0, 365 * 80))
        name = rng.choice(_SURNAMES) + "".join(rng.choice(_GIVEN)
                                               for _ in range(rng.choice((1, 2))))
        people.append(Resident(name, male, birth, _id_card(rng, birth, male),
                               rng.randrange(1, 40), f"1390000{rng.randrange(1000, 9999)}"))
    return people


def _oru(rng: random.Random, fac: Facility, n: int, when: datetime, broken: bool,
         bad_checksum: bool, person: Resident, number: int) -> str:
    id_card = person.id_card
    if bad_checksum:
        id_card = id_card[:-1] + ("0" if id_card[-1] != "0" else "1")
    ids = f"{fac.facility_id[:2]}{100000 + number * 7919 % 900000}^^^{fac.facility_id}^MR"
    if fac.facility_id != "HHXWSY" or rng.random() < 0.5:  # the clinic often omits it
        ids += f"~{id_card}^^^^SFZH"
    ts = f"{when:%Y%m%d%H%M%S}"
    control = f"{fac.facility_id}{n:05d}"
    segs = [
        f"MSH|^~\\&|{fac.application}|{fac.facility_id}|HUTONG|REGION|{ts}||ORU^R01^ORU_R01|"
        f"{control}|P|{fac.version}|||AL|NE||{fac.charset}",
        f"PID|1||{ids}||{person.name}||{person.birth:%Y%m%d}|"
        f"{'M' if person.male else 'F'}|||清水县河湖乡{person.village}号||{person.phone}",
        f"OBR|1|{control}P|{control}F|BCP^生化检验^L|||{ts}|||||||{ts}|血清",
    ]
    for i, (code, label, unit, ref, low, high, dec) in enumerate(rng.sample(_TESTS, 3), 1):
        value = round(rng.uniform(low, high), dec)
        lo, hi = (float(x) for x in ref.split("-"))
        flag = "H" if value > hi else "L" if value < lo else "N"
        text = "abc" if broken and i == 2 else f"{value:.{dec}f}"
        hl7_unit = unit.replace("^", "\\S\\")  # 10^9/L: ^ is the component separator
        segs.append(f"OBX|{i}|NM|{code}^{label}^L||{text}|{hl7_unit}|{ref}|{flag}|||F|||{ts}"
                    f"||||||||{fac.facility_id}检验科")
    return "\r".join(segs) + "\r"


def generate(seed: int = 2575, per_facility: int = 12,
             residents: int = 24) -> dict[Facility, list[str]]:
    """The feed: ``per_facility`` ORU^R01 messages for each facility, about a county's
    ``residents`` (so some have results at more than one facility)."""
    rng = random.Random(seed)  # noqa: S311 - sample data, not secrets
    county = _residents(rng, residents)
    start = datetime(2026, 11, 2, 8, 0)
    feeds: dict[Facility, list[str]] = {}
    for fac in FACILITIES:
        visitors = rng.sample(range(residents), per_facility)
        feeds[fac] = [
            _oru(rng, fac, n, start + timedelta(minutes=7 * n), broken=(n == per_facility - 1),
                 bad_checksum=(n == 3), person=county[who], number=who)
            for n, who in enumerate(visitors)
        ]
    return feeds


def write_feeds(directory: Path = FEED_DIR) -> list[Path]:
    """Write one ``.hl7`` file per facility in its own character set."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for fac, messages in generate().items():
        path = directory / f"{fac.facility_id.lower()}-lab.hl7"
        path.write_bytes("\n".join(m.replace("\r", "\n") for m in messages).encode(fac.encoding))
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in write_feeds():
        print(written)
