"""Inline SVG charts of the HTML report: listening over time, calendar, hour x weekday.

Pure functions returning markup. Every mark carries an SVG <title> (its exact figure) and
every chart a plain table, so nothing depends on colour or on seeing the chart. Levels
are drawn as a lightness ramp plus a hatch pattern on the top level, readable in grey.
"""

from __future__ import annotations

import calendar
import html
from collections.abc import Iterable
from datetime import date, timedelta

from sync.analytics.terminal import SHADES, WEEKDAYS, duration, shade
from sync.text import plural

CELL, GAP = 11, 2  # calendar square and spacing, in SVG units
STEP = CELL + GAP


def esc(value: object) -> str:
    """Escape for text and attributes alike (quotes included): no data can become markup."""
    return html.escape(str(value), quote=True)


def level(value: int, top: int) -> int:
    """0 (none) to 4 (most): the terminal heatmap's shading rule, as a class number."""
    return SHADES.index(shade(value, top))


def plays_text(plays: int, ms: int | None = None) -> str:
    text = plural(plays, "play")
    return text if ms is None else f"{text}, {duration(ms)}"


def _svg(width: int, height: int, label: str, body: Iterable[str], cls: str) -> str:
    return (
        f'<svg class="{cls}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{esc(label)}" xmlns="http://www.w3.org/2000/svg">' + "".join(body) + "</svg>"
    )


def _details_table(summary: str, head: list[str], rows: Iterable[Iterable[object]]) -> str:
    """A chart's figures as a table, folded away on screen."""
    cells = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    heads = "".join(f'<th scope="col">{esc(h)}</th>' for h in head)
    return (
        f"<details class=figures><summary>{esc(summary)}</summary>"
        f"<div class=scroll><table><thead><tr>{heads}</tr></thead>"
        f"<tbody>{cells}</tbody></table></div></details>"
    )


def buckets(
    days: dict[date, tuple[int, int]], first: date, last: date
) -> tuple[str, list[tuple[str, date, int, int]]]:
    """Plays and time per day (a month or less), week (a year or less) or month."""
    span = (last - first).days + 1
    unit = "day" if span <= 31 else "week" if span <= 366 else "month"
    out: dict[date, list[int]] = {}
    d = first
    while d <= last:
        if unit == "day":
            key = d
        elif unit == "week":
            key = d - timedelta(days=d.weekday())
        else:
            key = d.replace(day=1)
        slot = out.setdefault(key, [0, 0])
        plays, ms = days.get(d, (0, 0))
        slot[0] += plays
        slot[1] += ms
        d += timedelta(days=1)
    fmt = {"day": "%a %d %b", "week": "week of %d %b %Y", "month": "%b %Y"}[unit]
    return unit, [(k.strftime(fmt), k, p, ms) for k, (p, ms) in out.items()]


def over_time(days: dict[date, tuple[int, int]], first: date, last: date) -> str:
    """Bars of hours listened per day, week or month, with a table of the same figures."""
    unit, rows = buckets(days, first, last)
    width, height, left, bottom = 720, 200, 40, 22
    plot_w, plot_h = width - left - 4, height - bottom - 8
    top_ms = max((ms for *_, ms in rows), default=0) or 1
    slot = plot_w / max(len(rows), 1)
    bar_w = max(slot * 0.8, 0.6)
    body = [
        f'<line class=axis x1="{left}" y1="{8 + plot_h}" x2="{width - 4}" y2="{8 + plot_h}"/>',
        f'<text class=tick x="{left - 4}" y="14" text-anchor="end">'
        f"{esc(round(top_ms / 3_600_000, 1))} h</text>",
        f'<text class=tick x="{left - 4}" y="{8 + plot_h}" text-anchor="end">0</text>',
    ]
    label_every = max(1, len(rows) // 6)
    for i, (label, key, plays, ms) in enumerate(rows):
        h = plot_h * ms / top_ms
        x = left + i * slot + (slot - bar_w) / 2
        body.append(
            f'<rect class=bar x="{x:.1f}" y="{8 + plot_h - h:.1f}" width="{bar_w:.1f}" '
            f'height="{h:.1f}"><title>{esc(label)}: {esc(plays_text(plays, ms))}</title></rect>'
        )
        if i % label_every == 0:
            short = key.strftime("%d %b" if unit != "month" else "%b %Y")
            body.append(f'<text class=tick x="{x:.1f}" y="{height - 6}">{esc(short)}</text>')
    chart = _svg(width, height, f"Hours listened per {unit}", body, "chart")
    table = _details_table(
        f"Figures per {unit}",
        [unit, "plays", "time"],
        ((label, f"{plays:,}", duration(ms)) for label, _, plays, ms in rows),
    )
    return chart + table


def calendar_years(days: dict[date, tuple[int, int]], first: date, last: date) -> str:
    """One contributions-style grid per calendar year: a square per day, weeks as columns."""
    top = max((p for p, _ in days.values()), default=0)
    out = []
    for year in range(last.year, first.year - 1, -1):
        lo, hi = max(first, date(year, 1, 1)), min(last, date(year, 12, 31))
        jan1 = date(year, 1, 1)
        offset = jan1.weekday()  # column 0 starts on the Monday before 1 January
        left, head = 28, 14
        width = left + 54 * STEP
        height = head + 7 * STEP
        body = [
            f'<text class=tick x="0" y="{head + r * STEP + CELL - 1}">{WEEKDAYS[r]}</text>'
            for r in (0, 2, 4)
        ]
        for month in range(1, 13):
            col = (offset + (date(year, month, 1) - jan1).days) // 7
            body.append(
                f'<text class=tick x="{left + col * STEP}" y="10">'
                f"{calendar.month_abbr[month]}</text>"
            )
        plays_year = days_year = 0
        d = lo
        while d <= hi:
            idx = offset + (d - jan1).days
            plays, ms = days.get(d, (0, 0))
            plays_year += plays
            days_year += plays > 0
            what = plays_text(plays, ms) if plays else "no plays"
            body.append(
                f'<rect class="c{level(plays, top)}" x="{left + (idx // 7) * STEP}" '
                f'y="{head + (idx % 7) * STEP}" width="{CELL}" height="{CELL}" rx="2">'
                f"<title>{d:%a %Y-%m-%d}: {esc(what)}</title></rect>"
            )
            d += timedelta(days=1)
        caption = f"{year}: {plays_year:,} plays on {days_year:,} days"
        out.append(
            f"<figure class=year><figcaption>{esc(caption)}</figcaption>"
            f"{_svg(width, height, caption, body, 'calendar')}</figure>"
        )
    return "".join(out) + legend(top)


def legend(top: int) -> str:
    """What the levels mean, as text (the squares repeat the ramp for sighted readers)."""
    steps = ["none", "fewest", "", "", f"most ({top:,} plays)"]
    cells = "".join(
        f'<span class=key><svg viewBox="0 0 {CELL} {CELL}" aria-hidden="true">'
        f'<rect class="c{i}" width="{CELL}" height="{CELL}" rx="2"/></svg>{esc(t)}</span>'
        for i, t in enumerate(steps)
    )
    return f"<p class=legend>Plays per square: {cells} (darker, then hatched: more)</p>"


def hour_weekday(heat: dict[tuple[int, int], int]) -> str:
    """7 rows (Monday first) x 24 local hours, and the same figures as a table."""
    top = max(heat.values(), default=0)
    cw, ch, left, head = 28, 24, 36, 16
    body = [
        f'<text class=tick x="{left + h * cw + 2}" y="11">{h:02d}</text>' for h in range(0, 24, 3)
    ]
    for w in range(1, 8):
        y = head + (w - 1) * ch
        body.append(f'<text class=tick x="0" y="{y + 16}">{WEEKDAYS[w - 1]}</text>')
        for h in range(24):
            plays = heat.get((w, h), 0)
            body.append(
                f'<rect class="c{level(plays, top)}" x="{left + h * cw}" y="{y}" '
                f'width="{cw - 2}" height="{ch - 2}" rx="2"><title>{WEEKDAYS[w - 1]} '
                f"{h:02d}:00-{h:02d}:59: {esc(plays_text(plays))}</title></rect>"
            )
    chart = _svg(left + 24 * cw, head + 7 * ch, "Plays by hour and weekday", body, "hours")
    table = _details_table(
        "Figures per hour and weekday",
        ["hour", *WEEKDAYS],
        ([f"{h:02d}", *(f"{heat.get((w, h), 0):,}" for w in range(1, 8))] for h in range(24)),
    )
    return f"<div class='scroll wide'>{chart}</div>" + legend(top) + table
