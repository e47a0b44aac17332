"""Docs agree with themselves: measured figures live in docs/benchmarks.md only, and
SYNC_SUMMARY_DETAILS is described the way the workflow reads it (a variable)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "docs" / "benchmarks.md"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# a table row holding a measured time or size: "24 ms", "4.1-4.5 s", "62 MB", "83.7 (heap"
FIGURE = re.compile(
    r"\d+(?:\.\d+)?(?:-\d+(?:\.\d+)?)? ?(?:ms|MB|entries/s)\b"  # 24 ms, 62 MB
    r"|\d+(?:\.\d+)?-\d+(?:\.\d+)? s\b|\d+\.\d+ s\b"  # 4.1-4.5 s, 0.31 s
    r"|\d+\.\d+ \(heap"
)


def figure_rows(page: Path) -> list[str]:
    return [line for line in page.read_text().splitlines()
            if line.startswith("|") and FIGURE.search(line)]  # fmt: skip


def test_measured_figures_are_only_in_docs_benchmarks():
    assert figure_rows(BENCHMARKS), "docs/benchmarks.md should hold the figure tables"
    elsewhere = {p.name: figure_rows(p) for p in PAGES if p != BENCHMARKS}
    assert {name: rows for name, rows in elsewhere.items() if rows} == {}


def test_readme_and_docs_with_figures_point_to_benchmarks():
    for name in ("README.md", "docs/analytics.md", "docs/import.md", "docs/schema.md"):
        assert "benchmarks.md" in (ROOT / name).read_text(), name


def test_summary_details_is_a_variable_everywhere():
    for page in PAGES:
        text = " ".join(page.read_text().split())
        for match in re.finditer(r"SYNC_(?:SUMMARY_DETAILS|SHOW_USER_IDS)[^.]{0,80}", text):
            assert "secret" not in match.group(0), f"{page.name}: {match.group(0)}"
