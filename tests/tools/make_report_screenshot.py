"""Screenshots of the listening report for the README, from stand-in data (no real listener).

Generates a three-year history with the benchmark's generator (tests/bench/bench_analytics.py),
gives the catalogue readable made-up names, renders the 12-month report and photographs
it in headless Chromium with the network blocked:

    python -m tests.tools.make_report_screenshot        # TEST_DATABASE_URL, else embedded Postgres

writes docs/report-desktop.png (1280 px wide) and docs/report-mobile.png (390 px).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import psycopg

from sync.db import schema
from sync.reports import html as html_report
from sync.reports.data import load_report
from sync.store import aggregates
from sync.store import users as user_store
from tests.bench.bench_analytics import generate
from tests.bench.bench_report import database
from tests.support.browser import chromium, emulate

ROOT = Path(__file__).resolve().parents[2]
DB_NAME = "shs_report_screenshot"
WORDS_A = ["Velvet", "Paper", "Silver", "Midnight", "Golden", "Quiet", "Electric", "Northern",
           "Hollow", "Crimson", "Static", "Wild", "Glass", "Lunar", "Amber", "Neon"]  # fmt: skip
WORDS_B = ["Owls", "Harbor", "Rivers", "Lanterns", "Tides", "Echoes", "Foxes", "Skyline",
           "Gardens", "Signals", "Pines", "Comets", "Waves", "Cities", "Birds", "Dawn"]  # fmt: skip


def rename(conn: psycopg.Connection) -> None:
    """Made-up names: 'Velvet Owls' for artists, 'Quiet Harbor' for tracks and albums."""
    for table, fmt in (("artists", "%s %s"), ("albums", "%s %s"), ("tracks", "%s %s")):
        conn.execute(
            f"update {table} set name = format(%s, "
            "(%s::text[])[1 + (id * 7) %% 16], (%s::text[])[1 + (id / 16 + id * 3) %% 16])"
            + (" || ' ' || (id %% 7 + 1)" if table == "tracks" else ""),
            (fmt, WORDS_A, WORDS_B),
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m tests.tools.make_report_screenshot", description=__doc__
    )
    p.add_argument("--database-url", default=os.environ.get("TEST_DATABASE_URL", ""))
    p.add_argument("--out", default=str(ROOT / "docs"))
    args = p.parse_args(argv)
    with database(args, DB_NAME) as (admin, url):
        with psycopg.connect(admin, autocommit=True) as a:
            a.execute(f'drop database if exists "{DB_NAME}" with (force)')
            a.execute(f'create database "{DB_NAME}"')
        with psycopg.connect(url) as conn:
            schema.migrate(conn)
            key = generate(conn, 60_000, 3.0)
            rename(conn)
            aggregates.rebuild(conn, key)
            conn.commit()
            user = user_store.resolve_user(conn, f"user-{key}")
            page = html_report.render_report(load_report(conn, user, "12m", f"user-{key}"))
        html_path = Path(args.out) / "report-example.html"
        html_path.write_text(page, encoding="utf-8")
        out = Path(args.out)
        with chromium() as driver:
            driver.get(html_path.as_uri())
            for name, width, height in (("desktop", 1280, 1500), ("mobile", 390, 1500)):
                emulate(driver, width, height)
                path = out / f"report-{name}.png"
                path.write_bytes(driver.get_screenshot_as_png())
                print(f"{path} ({path.stat().st_size // 1024} KB)")
        html_path.unlink()
        with psycopg.connect(admin, autocommit=True) as a:
            a.execute(f'drop database if exists "{DB_NAME}" with (force)')
    return 0


if __name__ == "__main__":
    sys.exit(main())
