"""The report in a real browser (headless Chromium, network blocked): no console errors,
no request of any kind, the sections visible at desktop and phone widths, screenshots."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync.reports import html as html_report
from sync.reports.data import load_report
from sync.store import users as user_store
from tests.support.browser import chromium, find_chromium, full_page_png
from tests.support.report import hostile_history

FOUND = find_chromium()
pytestmark = pytest.mark.skipif(isinstance(FOUND, str), reason=str(FOUND))
SECTIONS = ["figures", "over-time", "calendar", "hours", "top-artists", "top-tracks",
            "top-albums", "discoveries", "rediscover"]  # fmt: skip


@pytest.fixture
def report_file(conn, tmp_path) -> Path:
    hostile_history(conn)
    user = user_store.resolve_user(conn, "alice")
    path = tmp_path / "report.html"
    path.write_text(html_report.render_report(load_report(conn, user, "12m", "user-1")))
    return path


@pytest.mark.parametrize("width", [1280, 390])
def test_report_loads_offline_without_errors_or_requests(report_file, tmp_path, width):
    with chromium(width=width) as driver:
        driver.get(report_file.as_uri())
        errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
        assert errors == []
        resources = driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
        )
        assert resources == []
        assert driver.execute_script("return document.scripts.length") == 0
        alerts = driver.execute_script("return document.querySelectorAll('img').length")
        assert alerts == 0
        for section in SECTIONS:
            box = driver.execute_script(
                "const r = document.getElementById(arguments[0]).getBoundingClientRect();"
                "return [r.width, r.height, r.left];",
                section,
            )
            assert box[0] > 0 and box[1] > 0, section
            assert box[0] + box[2] <= width + 1, f"{section} wider than the window"
        # nothing scrolls sideways on a phone
        page_width = driver.execute_script("return document.documentElement.scrollWidth")
        assert page_width <= width
        shot = full_page_png(driver, tmp_path / f"report-{width}.png", width)
        print(f"screenshot: {shot}")
        assert shot.stat().st_size > 10_000


def test_blocked_network_is_really_blocked(tmp_path):
    """The check above can fail: a page that fetches something shows up as a resource."""
    page = tmp_path / "leaky.html"
    page.write_text('<!DOCTYPE html><img src="https://i.scdn.co/image/x" alt="">')
    with chromium() as driver:
        driver.get(page.as_uri())
        resources = driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
        )
        assert set(resources) == {"https://i.scdn.co/image/x"}
