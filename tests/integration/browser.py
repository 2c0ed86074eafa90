"""Debian's headless Chromium for the console tests, driven by Selenium offline.

The driver is Debian's ``chromedriver`` (the same build as ``chromium``), named
explicitly so Selenium Manager never looks for or downloads a driver or browser.
A test module that imports this is skipped when either is missing (``make tools``
installs them). Screenshots go under ``tests/artifacts/``.
"""

from __future__ import annotations

import base64
import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"

if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    pytest.skip("Debian's chromium and chromium-driver are not installed (make tools "
                "installs them)", allow_module_level=True)

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is a dev dependency")
from selenium.common.exceptions import (  # noqa: E402
    NoSuchElementException,
    StaleElementReferenceException,
)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

__all__ = ["ARTIFACTS", "chromium", "shoot", "until"]


@contextlib.contextmanager
def chromium() -> Iterator[WebDriver]:
    """A headless Chromium in the operators' zone (Asia/Shanghai)."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1440,1000", "--lang=zh-CN",
                     "--no-first-run", "--disable-extensions",
                     "--disable-background-networking", "--disable-component-update"):
        options.add_argument(argument)
    service = Service(executable_path=str(CHROMEDRIVER),
                      env={**os.environ, "TZ": "Asia/Shanghai"})
    driver = webdriver.Chrome(service=service, options=options)
    try:
        yield driver
    finally:
        driver.quit()


def shoot(driver: WebDriver, name: str) -> Path:
    """A screenshot of the whole page, below the fold too, as ``ARTIFACTS/<name>.png``."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}})
    path = ARTIFACTS / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def until(driver: WebDriver, what: Callable[[WebDriver], Any], timeout: float = 90) -> Any:
    """Poll ``what`` until it is truthy; an element the page re-rendered meanwhile (the
    console refreshes its rows) is looked for again, not an error."""
    return WebDriverWait(driver, timeout, poll_frequency=0.25,
                         ignored_exceptions=(NoSuchElementException,
                                             StaleElementReferenceException)).until(what)
