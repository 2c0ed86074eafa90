"""The exchange monitor (交换监控) in Debian's headless Chromium, against a real hub.

Two registered facilities send over MLLP: 清水县人民医院 (GOODHOSP) a normal
potassium and a critical one (6.8 mmol/L under its local code K01, mapped to
LOINC 2823-3: an alert), 河西乡卫生院 (BADHOSP) a result and an ORU^R30 this
hub does not read (a dead letter); a third facility is registered and silent.
The page asks for a token (the hub has users), refuses an analyst's, and with an
admin's shows the facility rows (status, messages in the last hour), the open
alert with its clock running, and the dead letter. Once the hub reads R30 (the
R01 mapper registered for it, as an upgrade would), Retry turns the letter into
events. Screenshots go to ``tests/artifacts/console/``.

The browser is driven by Selenium through Debian's ``chromedriver`` (the same
build as ``chromium``), named explicitly so Selenium Manager never looks for or
downloads a driver or browser: everything runs offline.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from connectors.facilities import hash_api_key
from hutong.config import Settings
from producers.hl7v2.adapter import MAPPERS

from .conftest import RunningHub, send

pytestmark = pytest.mark.integration

ADMIN, ANALYST = "tok-console-admin", "tok-console-analyst"

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is a dev dependency")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402

from .browser import ARTIFACTS, chromium, shoot, until  # noqa: E402

FACILITIES = """facilities:
  - id: GOODHOSP
    name: 清水县人民医院
    mllp_sources: [127.0.0.1/32]
  - id: BADHOSP
    name: 河西乡卫生院
    mllp_sources: [127.0.0.1/32]
  - id: IDLEHOSP
    name: 东岭村卫生室
    mllp_sources: [10.9.9.0/24]
"""
USERS = f"""users:
  - name: ops
    roles: [admin]
    tokens: ["{hash_api_key(ADMIN)}"]
  - name: li.analyst
    roles: [analyst]
    tokens: ["{hash_api_key(ANALYST)}"]
"""


def oru(facility: str, cid: str, code: str, value: str, trigger: str = "R01") -> bytes:
    return (f"MSH|^~\\&|LIS|{facility}|HUTONG|REGION|20261204093000||ORU^{trigger}^ORU_{trigger}"
            f"|{cid}|P|2.4||||||UNICODE UTF-8\r"
            f"PID|1||{cid}-P^^^{facility}^MR||监控甲||19600101|M\r"
            "PV1|1|I|NK^内科\r"
            f"ORC|RE|{cid}P|{cid}F|||||||||D0042^王^医生\r"
            f"OBR|1|{cid}P|{cid}F|BCP^生化^L|||20261204090000\r"
            f"OBX|1|NM|{code}^检验^L||{value}|mmol/L|3.5-5.5||||F|||20261204092500\r").encode()


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory,
        hub_settings: Callable[..., Settings]) -> Iterator[RunningHub]:
    data_dir = tmp_path_factory.mktemp("console-hub")
    (data_dir / "facilities.yaml").write_text(FACILITIES, encoding="utf-8")
    (data_dir / "users.yaml").write_text(USERS, encoding="utf-8")
    (data_dir / "terminology").mkdir()
    (data_dir / "terminology" / "goodhosp.csv").write_text(
        "facility_id,source_system,local_code,target_system,target_code\n"
        "GOODHOSP,lab-test,K01,LOINC,2823-3\n", encoding="utf-8")
    running = RunningHub(hub_settings(data_dir, intake_open=False,
                                      monitor_cache_s=1.0)).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    for old in ARTIFACTS.glob("console/*.png"):
        old.unlink()
    with chromium() as driver:
        yield driver


def row(driver: WebDriver, facility: str) -> WebElement | None:
    found = driver.find_elements(By.CSS_SELECTOR, f'#facility-rows tr[data-facility="{facility}"]')
    return found[0] if found else None


def showing(facility: str, **wanted: str) -> Callable[[WebDriver], WebElement | None]:
    """The facility's row once its data attributes say ``wanted``."""
    def probe(driver: WebDriver) -> WebElement | None:
        found = row(driver, facility)
        if found is None:
            return None
        for name, value in wanted.items():
            if found.get_attribute(f"data-{name.replace('_', '-')}") != value:
                return None
        return found
    return probe


def sign_in(driver: WebDriver, token: str) -> None:
    field = until(driver, lambda d: d.find_element(By.ID, "token") if d.find_element(
        By.ID, "auth").is_displayed() else None, timeout=20)
    field.clear()
    field.send_keys(token)
    driver.find_element(By.ID, "sign-in").click()


def test_the_console_shows_traffic_alerts_and_retries_a_dead_letter(
        hub: RunningHub, browser: WebDriver, monkeypatch: pytest.MonkeyPatch) -> None:
    acks = send(hub, oru("GOODHOSP", "G0001", "K01", "4.1"), oru("GOODHOSP", "G0002", "K01", "6.8"))
    assert [code for code, _, _ in acks] == ["AA", "AA"]
    acks = send(hub, oru("BADHOSP", "B0001", "GLU", "5.6"),
                oru("BADHOSP", "B0002", "GLU", "5.9", trigger="R30"))
    assert [code for code, _, _ in acks] == ["AA", "AR"]

    browser.get(f"{hub.settings.api_url}/console")
    assert browser.title.startswith("交换监控")
    sign_in(browser, ANALYST)  # the hub has users: a token first, and not an analyst's
    until(browser, lambda d: "admin" in d.find_element(By.ID, "auth-message").text, timeout=20)
    shoot(browser, "console/01-token")
    sign_in(browser, ADMIN)
    until(browser, lambda d: d.find_element(By.ID, "board").is_displayed(), timeout=20)

    good = until(browser, showing("GOODHOSP", status="ok", messages_hour="2"))
    bad = until(browser, showing("BADHOSP", status="failing", messages_hour="1",
                                 errors_hour="1"))
    idle = until(browser, showing("IDLEHOSP", status="silent", messages_hour="0"))
    assert "清水县人民医院" in good.text and "正常" in good.text
    assert "异常" in bad.text and "50%" in bad.text
    assert "从未" in idle.text  # never sent
    assert good.find_element(By.CSS_SELECTOR, "svg.spark").get_attribute("data-messages") == "2"

    ticking = '#alert-rows tr[data-alert] .clock[data-deadline]:not([data-deadline=""])'
    alert = until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ticking))
    clock = alert[0]
    first = clock.text
    assert first.startswith("剩余"), first  # the default plan: 10 minutes to acknowledge
    until(browser, lambda d: clock.text != first, timeout=5)  # it counts down
    alert_row = browser.find_element(By.CSS_SELECTOR, "#alert-rows tr[data-alert]")
    assert "6.8 mmol/L" in alert_row.text and "2823-3" in alert_row.text
    assert "监控甲" not in browser.find_element(By.TAG_NAME, "body").text  # no patient names

    retry = until(browser, lambda d: d.find_elements(
        By.CSS_SELECTOR, '#dead-letter-rows tr[data-letter-facility="BADHOSP"] button.retry'))
    letter_row = browser.find_element(By.CSS_SELECTOR,
                                      '#dead-letter-rows tr[data-letter-facility="BADHOSP"]')
    assert "ORU^R30 is not supported" in letter_row.text
    until(browser, lambda d: d.find_elements(  # BADHOSP's GLU has no map
        By.CSS_SELECTOR, '#unmapped-rows tr[data-unmapped="BADHOSP|lab-test|GLU"]'))
    shoot(browser, "console/02-monitor")

    monkeypatch.setitem(MAPPERS, ("ORU", "R30"), MAPPERS[("ORU", "R01")])  # the upgrade
    retry[0].click()
    outcome = until(browser, lambda d: d.find_elements(
        By.CSS_SELECTOR, '#dead-letter-rows tr[data-letter-facility="BADHOSP"] '
                         '.outcome[data-outcome="AA"]'), timeout=30)
    assert "已接收" in outcome[0].text
    done = browser.find_element(By.CSS_SELECTOR,
                                '#dead-letter-rows tr[data-letter-facility="BADHOSP"]')
    assert done.get_attribute("data-retried") == "AA"
    assert not done.find_elements(By.CSS_SELECTOR, "button.retry")  # nothing left to retry
    until(browser, showing("BADHOSP", messages_hour="2"))  # the retried message is in
    shoot(browser, "console/03-retried")


def test_screenshots_are_kept() -> None:
    kept = sorted(path.name for path in ARTIFACTS.glob("console/*.png"))
    assert kept == ["01-token.png", "02-monitor.png", "03-retried.png"]
    assert all(path.stat().st_size > 10_000 for path in ARTIFACTS.glob("console/*.png"))
