"""docs/onboarding.md, followed to the letter for its fictional facility (SFSQZX).

The page's blocks marked ``file=...`` are written where the page says (the hub's
data directory), its first message is sent with ``hutong send`` as the page shows,
and what step 7 promises is checked: the facility's row on the exchange monitor
(in Debian's headless Chromium), its series in ``/metrics``, and its results in
the warehouse with the LOINC codes of its maps.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from hutong.config import Settings

from .conftest import RunningHub, wait_for

pytestmark = pytest.mark.integration

from selenium.webdriver.common.by import By  # noqa: E402

from .browser import chromium, shoot, until  # noqa: E402

REPO = Path(__file__).parents[2]
GUIDE = REPO / "docs" / "onboarding.md"
FACILITY = "SFSQZX"


def files_in_guide() -> dict[str, str]:
    """The guide's ``file=NAME`` blocks, by name."""
    blocks = re.findall(r"```\w+ file=(\S+)\n(.*?)```", GUIDE.read_text("utf-8"), flags=re.S)
    return dict(blocks)


def test_the_guide_names_the_files_a_team_writes() -> None:
    assert set(files_in_guide()) == {"facilities.yaml", "terminology/sfsqzx.csv",
                                     "first-message.hl7"}
    assert "hutong send first-message.hl7 --to mllp://" in GUIDE.read_text("utf-8")


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory,
        hub_settings: Callable[..., Settings]) -> Iterator[RunningHub]:
    data_dir = tmp_path_factory.mktemp("onboarding")
    for name, text in files_in_guide().items():  # step 2, 4 and 6 of the guide
        path = data_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    running = RunningHub(hub_settings(data_dir, intake_open=False)).start()  # restart: step 6
    yield running
    running.stop()


def test_following_the_guide_a_facility_is_seen_on_console_metrics_and_warehouse(
        hub: RunningHub) -> None:
    message = hub.settings.data_dir / "first-message.hl7"
    sent = subprocess.run(
        [sys.executable, "-m", "hutong", "send", str(message), "--to",
         f"mllp://127.0.0.1:{hub.settings.mllp_port}"],
        capture_output=True, text=True, timeout=60, check=False)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert "AA SFSQZX0001" in sent.stdout + sent.stderr

    rows = wait_for(lambda: hub.query(
        "SELECT test_code, standard_code FROM hutong.lab_results "
        "WHERE facility_id = {f:String} ORDER BY test_code", {"f": FACILITY}))
    assert rows == [("GLU", "14749-6"), ("K", "2823-3")]

    metrics = httpx.get(f"{hub.settings.api_url}/metrics", timeout=10).text
    assert re.search(r'hutong_facility_messages_total\{facility="SFSQZX",'
                     r'message_type="ORU",outcome="AA"\} 1\.0', metrics), metrics[:2000]
    assert re.search(r'hutong_facility_last_message_timestamp_seconds\{facility="SFSQZX"\} '
                     r'\d', metrics)

    with chromium() as browser:
        browser.get(f"{hub.settings.api_url}/console")
        row = until(browser, lambda d: [r for r in d.find_elements(
            By.CSS_SELECTOR, f'#facility-rows tr[data-facility="{FACILITY}"]')
            if r.get_attribute("data-messages-hour") == "1"], timeout=60)[0]
        assert row.get_attribute("data-status") == "ok"
        assert "示范社区卫生服务中心" in row.text
        shoot(browser, "onboarding/console")
