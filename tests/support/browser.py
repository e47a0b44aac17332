"""Headless Chromium (Debian's chromium + chromium-driver) through selenium, network off.

Used by the browser tests and the README screenshot script. `find_chromium` says why
it cannot run (the tests skip with that reason) instead of failing.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

INSTALL = "apt-get install chromium chromium-driver"
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--host-resolver-rules=MAP * ~NOTFOUND",  # no name resolves: nothing can leave
]


def find_chromium() -> tuple[str, str] | str:
    """(chromium, chromedriver) paths, or the reason they are missing."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -r requirements-dev.txt)"
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver") or (
        "/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None
    )
    if not browser or not driver:
        return f"no Chromium and chromedriver found: {INSTALL}"
    return browser, driver


@contextmanager
def chromium(width: int = 1280, height: int = 900) -> Iterator:
    """A selenium driver on a fresh profile, every URL blocked, console logs kept."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = find_chromium()
    if isinstance(found, str):
        raise RuntimeError(found)
    browser, driver_path = found
    profile = tempfile.mkdtemp(prefix="shs-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in [*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["*://*/*", "http*"]})
        emulate(driver, width, height)  # windows cannot be narrower than ~500 px
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def emulate(driver, width: int, height: int) -> None:
    """A viewport of exactly this CSS size (a phone below 500 px)."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 500},
    )


def full_page_png(driver, path: Path, width: int) -> Path:
    """A screenshot of the whole page at this CSS width (the viewport grows to its height)."""
    emulate(driver, width, 900)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    emulate(driver, width, int(height))
    path.write_bytes(driver.get_screenshot_as_png())
    emulate(driver, width, 900)
    return path
