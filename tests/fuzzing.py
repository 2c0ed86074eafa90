"""Hypothesis settings and shared pieces of the bad-input campaign (tests/unit/test_fuzz_*.py).

Two profiles, chosen by the ``HYPOTHESIS_PROFILE`` environment variable:

``ci`` (the default)
    what ``make test`` runs: each property gets the example count it names, no deadline
    (a slow example is not a failure; a hang is caught by the pytest timeout), so the
    whole fuzz set adds well under a minute;
``campaign``
    a longer local run (``make fuzz``), 50 times the examples of each property and five
    minutes of atheris::

        HYPOTHESIS_PROFILE=campaign .venv/bin/pytest -q tests/unit/test_fuzz_*.py

Failures are shrunk and kept in ``.hypothesis/`` as usual, and printed with a
``@reproduce_failure`` blob, so a CI failure can be replayed locally.
"""

from __future__ import annotations

import os
import resource
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

__all__ = ["CAMPAIGN", "PATIENT_MARK", "TIMEOUT", "RssWatch", "fuzzed", "hanzi", "rss_bytes",
           "watch_rss"]

_SCALE = {"ci": 1, "campaign": 50}
_PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
if _PROFILE not in _SCALE:
    raise RuntimeError(f"HYPOTHESIS_PROFILE must be one of {', '.join(_SCALE)}, not {_PROFILE!r}")
#: Whether this is the long local run.
CAMPAIGN = _PROFILE == "campaign"
#: The pytest timeout of a fuzz module (a guard against a hang, longer for a campaign).
TIMEOUT = pytest.mark.timeout(3 * 3600 if CAMPAIGN else 180)

for _name, _scale in _SCALE.items():
    settings.register_profile(  # CI derandomized: the same examples every run
        f"hutong-fuzz-{_name}", deadline=None, print_blob=True, derandomize=_name == "ci",
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                               HealthCheck.filter_too_much, HealthCheck.large_base_example])


def fuzzed(examples: int) -> settings:
    """The settings of one property: ``examples`` in CI, 50 times as many in a campaign."""
    return settings(settings.get_profile(f"hutong-fuzz-{_PROFILE}"),
                    max_examples=examples * _SCALE[_PROFILE])


#: Put in front of every planted patient value, so a leak into an error text is seen even
#: when the value itself was mutated.
PATIENT_MARK = "\u2603"

#: Common hanzi (names, places): 的 to 龥 would include rare ones; these are enough.
_HANZI = ("张王李赵刘陈杨黄周吴徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾萧田董袁潘于蒋蔡"
          "余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯"
          "龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超霞"
          "平刚桂")


def hanzi(min_size: int = 1, max_size: int = 4) -> st.SearchStrategy[str]:
    """Chinese text of common characters."""
    return st.text(alphabet=_HANZI, min_size=min_size, max_size=max_size)


def rss_bytes() -> int:
    """This process's resident set size now (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


@dataclass
class RssWatch:
    """The resident set size before a block and the highest seen while it ran."""

    before: int
    peak: int = 0

    @property
    def growth(self) -> int:
        return max(0, self.peak - self.before)


@contextmanager
def watch_rss(interval: float = 0.002) -> Iterator[RssWatch]:
    """Sample RSS in a thread while the block runs: a transient blow-up shows as ``growth``."""
    watch = RssWatch(before=rss_bytes())
    watch.peak = watch.before
    done = threading.Event()

    def sample() -> None:
        while not done.wait(interval):
            watch.peak = max(watch.peak, rss_bytes())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield watch
    finally:
        done.set()
        sampler.join()
        watch.peak = max(watch.peak, rss_bytes())
