"""The listening report as one self-contained HTML page (pure: ReportData in, text out).

Nothing in the page fetches anything: inline CSS and SVG, no script, no fonts, and a
Content-Security-Policy that forbids every request (album art only when asked for,
from Spotify's image host). Every name from the data is escaped, quotes included, and
isolated with <bdi> so right-to-left overrides cannot reorder the text around it.
"""

from __future__ import annotations

import logging

from sync.analytics.terminal import duration, estimated_note, listening_time, no_plays_text
from sync.reports import charts as html_charts
from sync.reports.charts import esc, plays_text
from sync.reports.data import IMAGE_PREFIX, TOP_SHOWN, Entry, ReportData
from sync.text import plural

log = logging.getLogger(__name__)

NAME_LIMIT = 300  # characters of a name shown; longer names end in an ellipsis

CSS = """
:root{--ink:#1b1f23;--muted:#5a6270;--line:#d9dde3;--bg:#f6f7f9;--card:#fff;--accent:#12703c;
--c0:#e6e9ee;--c1:#b7dfc3;--c2:#6fbf8a;--c3:#2e8c57;--c4:#0b4d2a}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:15px/1.45 system-ui,-apple-system,
"Segoe UI",Roboto,Helvetica,Arial,sans-serif}
main{max-width:980px;margin:0 auto;padding:16px}
header h1{font-size:1.6rem;margin:.2em 0}
header p{margin:.2em 0;color:var(--muted)}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:14px 16px;
margin:14px 0;break-inside:avoid}
h2{font-size:1.15rem;margin:0 0 .6em}
.figs{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:10px;margin:0}
.figs div{border:1px solid var(--line);border-radius:8px;padding:8px 10px;background:var(--card)}
.figs dt{color:var(--muted);font-size:.85rem}
.figs dd{margin:0;font-size:1.45rem;font-weight:650;font-variant-numeric:tabular-nums}
.figs small{display:block;font-size:.8rem;font-weight:400;color:var(--muted)}
svg{display:block;width:100%;height:auto;max-width:100%}
svg.calendar{max-width:720px}
.wide figure,.wide svg.hours{min-width:560px}
.end{direction:rtl}.end>*{direction:ltr}
.tick{font-size:9px;fill:var(--muted)}
.axis{stroke:var(--muted);stroke-width:1}
.bar{fill:var(--c3)}
.c0{fill:var(--c0)}.c1{fill:var(--c1)}.c2{fill:var(--c2)}.c3{fill:var(--c3)}
.c4{fill:url(#hatch)}
figure{margin:0 0 10px}
figcaption{font-weight:600;font-size:.9rem;margin-bottom:2px}
.legend{font-size:.8rem;color:var(--muted);display:flex;flex-wrap:wrap;gap:4px 10px;
align-items:center;margin:.4em 0}
.key{display:inline-flex;align-items:center;gap:3px}.key svg{width:11px;height:11px}
details{margin-top:.4em}summary{cursor:pointer;color:var(--accent);font-size:.9rem}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{padding:4px 6px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{font-weight:600;color:var(--muted);font-size:.8rem}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.name{overflow-wrap:anywhere;width:60%}
td.name small{display:block;color:var(--muted)}
bdi{unicode-bidi:isolate}
img.art{width:40px;height:40px;float:left;margin-right:8px;border-radius:4px}
.up{color:#0b6b34}.down{color:#a3361b}.new{color:#5b3fa3;font-weight:600}
.note{color:var(--muted);font-size:.85rem}
footer{color:var(--muted);font-size:.8rem;margin:20px 0}
@media (max-width:560px){main{padding:8px}section{padding:10px}.figs dd{font-size:1.2rem}
td.time,th.time{display:none}.end figcaption{text-align:right}}
@media print{body{background:#fff;font-size:11pt}main{max-width:none;padding:0}
section{border:0;padding:0;margin:0 0 12pt}details{display:none}
svg rect{print-color-adjust:exact;-webkit-print-color-adjust:exact}a{color:inherit}}
"""

HATCH = (
    '<svg width="0" height="0" aria-hidden="true" style="position:absolute">'
    '<defs><pattern id="hatch" width="4" height="4" patternUnits="userSpaceOnUse" '
    'patternTransform="rotate(45)"><rect width="4" height="4" fill="#0b4d2a"/>'
    '<line x1="0" y1="0" x2="0" y2="4" stroke="#fff" stroke-width="1.2"/></pattern></defs></svg>'
)


def content_security_policy(images: bool) -> str:
    """No request of any kind; with --images, pictures from Spotify's image host only."""
    img = "data: " + IMAGE_PREFIX.rstrip("/") if images else "data:"
    return (
        f"default-src 'none'; style-src 'unsafe-inline'; img-src {img}; "
        "base-uri 'none'; form-action 'none'"
    )


def name_html(text: str) -> str:
    """A name from the data as isolated, escaped text (very long names shortened)."""
    text = " ".join(str(text).split())
    if len(text) > NAME_LIMIT:
        text = text[: NAME_LIMIT - 1] + "…"
    return f"<bdi>{esc(text)}</bdi>"


def figure(key: str, label: str, value: int, shown: str, note: str = "") -> str:
    """A headline number; data-figure / data-value let tests and scripts read it exactly."""
    small = f"<small>{esc(note)}</small>" if note else ""
    return (
        f'<div><dt>{esc(label)}</dt><dd data-figure="{esc(key)}" data-value="{int(value)}">'
        f"{esc(shown)}{small}</dd></div>"
    )


def hours_shown(ms: int) -> str:
    """Hours with a decimal from one hour up; minutes below (never "0.0 h")."""
    return f"{ms / 3_600_000:,.1f} h" if ms >= 3_600_000 else listening_time(ms)


def headline(r: ReportData) -> str:
    longest = ""
    if r.longest_start and r.longest_end:
        longest = f"{r.longest_start:%Y-%m-%d} – {r.longest_end:%Y-%m-%d}"
    current = "ending today or yesterday"
    if r.period.last_day < r.today:  # a past year: its own streaks
        current = f"at the end of {r.period.key}"
    figs = [
        figure("plays", "Plays", r.plays, f"{r.plays:,}"),
        figure("listening_ms", "Listening time", r.listening_ms, hours_shown(r.listening_ms),
               estimated_note(r.estimated_ms, r.listening_ms)),
        figure("days_listened", "Days listened", r.days_listened, f"{r.days_listened:,}",
               f"of {r.period.days:,}"),
        figure("distinct_tracks", "Tracks", r.distinct_tracks, f"{r.distinct_tracks:,}"),
        figure("distinct_artists", "Artists", r.distinct_artists, f"{r.distinct_artists:,}"),
        figure("distinct_albums", "Albums", r.distinct_albums, f"{r.distinct_albums:,}"),
        figure("current_streak", "Current streak", r.current_streak,
               plural(r.current_streak, "day"), current),
        figure("longest_streak", "Longest streak", r.longest_streak,
               plural(r.longest_streak, "day"), longest),
    ]  # fmt: skip
    hidden = f'<span hidden data-figure="estimated_ms" data-value="{int(r.estimated_ms)}"></span>'
    return (
        '<section id="figures"><h2>Headline figures</h2>'
        f'<dl class="figs">{"".join(figs)}</dl>{hidden}'
        '<p class="note">Listening time is exact for imported plays and estimated for plays '
        "from the Web API (the track's length, capped by the time to the next play). "
        "Streaks count all time, up to today.</p></section>"
    )


def change(entry: Entry, has_previous: bool) -> str:
    """Rank change as words and arrows, not colour alone."""
    if not has_previous:
        return ""
    if entry.previous_rank is None:
        return '<span class="new" title="not played in the previous period">new</span>'
    diff = entry.previous_rank - entry.rank
    was = f"was #{entry.previous_rank:,}"
    if diff > 0:
        return f'<span class="up" title="{esc(was)}">▲ {diff:,}</span>'
    if diff < 0:
        return f'<span class="down" title="{esc(was)}">▼ {-diff:,}</span>'
    return f'<span title="{esc(was)}">= same</span>'


def entry_row(entry: Entry, has_previous: bool, extra: str = "") -> str:
    art = ""
    if entry.image_url and entry.image_url.startswith(IMAGE_PREFIX):
        art = f'<img class="art" src="{esc(entry.image_url)}" alt="" width="40" height="40">'
    detail = f"<small>{name_html(entry.detail)}</small>" if entry.detail else ""
    chg = f'<td class="n">{change(entry, has_previous)}</td>' if has_previous else ""
    extra_td = f'<td class="n">{esc(extra)}</td>' if extra else ""
    return (
        f'<tr data-rank="{entry.rank}" data-plays="{entry.plays}">'
        f'<td class="n">{entry.rank}</td><td class="name">{art}{name_html(entry.name)}{detail}</td>'
        f'<td class="n">{entry.plays:,}</td><td class="n time">{esc(duration(entry.listening_ms))}'
        f"</td>{chg}{extra_td}</tr>"
    )


def entry_table(entries: list[Entry], has_previous: bool, extra_head: str = "", extra=None) -> str:
    """The first ten rows, and the rest (up to 50) behind a "show more" without script."""
    heads = '<th class="n">#</th><th>name</th><th class="n">plays</th><th class="n time">time</th>'
    heads += '<th class="n">vs before</th>' if has_previous else ""
    heads += f'<th class="n">{esc(extra_head)}</th>' if extra_head else ""

    def table(rows: list[Entry]) -> str:
        body = "".join(entry_row(e, has_previous, extra(e) if extra else "") for e in rows)
        head = f"<thead><tr>{heads}</tr></thead>"
        return f"<div class=scroll><table>{head}<tbody>{body}</tbody></table></div>"

    out = table(entries[:TOP_SHOWN])
    if len(entries) > TOP_SHOWN:
        out += (
            f"<details><summary>Show ranks {TOP_SHOWN + 1}–{len(entries)}</summary>"
            f"{table(entries[TOP_SHOWN:])}</details>"
        )
    return out


def top_sections(r: ReportData) -> str:
    has_previous = r.previous is not None
    out = []
    for name, entries in r.top.items():
        body = entry_table(entries, has_previous) if entries else "<p>No plays in this period.</p>"
        out.append(f'<section id="top-{esc(name)}"><h2>Top {esc(name)}</h2>{body}</section>')
    return "".join(out)


def discoveries(r: ReportData) -> str:
    if r.period.key == "all":
        return ""
    if not r.discoveries:
        body = "<p>No artist was played for the first time in this period.</p>"
    else:
        body = (
            f"<p>{r.discoveries_total:,} artists first played in this period; the most "
            "played of them:</p>" + entry_table(r.discoveries, False)
        )
    return f'<section id="discoveries"><h2>Discoveries</h2>{body}</section>'


def rediscover(r: ReportData) -> str:
    if not r.rediscover:
        body = "<p>Nothing much-played has been left aside for six months.</p>"
    else:
        body = "<p>Much-played tracks not played in the last six months.</p>" + entry_table(
            r.rediscover,
            False,
            "last played",
            lambda e: f"{e.last_day:%Y-%m-%d}" if e.last_day else "",
        )
    return f'<section id="rediscover"><h2>Rediscover</h2>{body}</section>'


def spoken_section(r: ReportData) -> str:
    """Podcasts and audiobooks, apart from music: hours per show or book, the top ones.
    Nothing when the period has none, so a music-only page is unchanged."""
    sp = r.spoken
    if not sp.plays:
        return ""
    rows = "".join(
        f"<tr><td class=n>{i}</td><td>{name_html(show or '(no name)')}</td><td>{esc(kind)}</td>"
        f"<td class=n>{plays:,}</td><td class='n time'>{esc(hours_shown(ms))}</td></tr>"
        for i, (kind, show, plays, ms) in enumerate(sp.top, 1)
    )
    heads = ('<th class="n">#</th><th>show or book</th><th>kind</th><th class="n">plays</th>'
             '<th class="n time">time</th>')  # fmt: skip
    total = (
        f'<p>Not in the music figures above: <span data-figure="spoken-plays" '
        f'data-value="{sp.plays}">{sp.plays:,} plays</span>, <span data-figure="spoken-ms" '
        f'data-value="{sp.listening_ms}">{esc(hours_shown(sp.listening_ms))}</span> of '
        f"{sp.shows:,} shows and books.</p>"
    )
    return (
        f'<section id="podcasts"><h2>Podcasts and audiobooks</h2>{total}<div class=scroll>'
        f"<table><thead><tr>{heads}</tr></thead><tbody>{rows}</tbody></table></div></section>"
    )


def render_report(r: ReportData) -> str:
    """The whole page. Pure: the same data always gives the same text."""
    p = r.period
    span = f"{p.first_day:%Y-%m-%d} – {p.last_day:%Y-%m-%d}"
    title = f"Listening report: {r.user_label}, {p.label}"
    before = (
        f" Rank changes compare with {r.previous.first_day:%Y-%m-%d} – "
        f"{r.previous.last_day:%Y-%m-%d}."
        if r.previous
        else ""
    )
    images = (
        " Album art is loaded from Spotify's image servers when this page is viewed."
        if r.images
        else ""
    )
    head = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" '
        f'content="{esc(content_security_policy(r.images))}">',
        '<meta name="referrer" content="no-referrer">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f"{HATCH if r.plays else ''}<main>",
        f"<header><h1>Listening report</h1><p><bdi>{esc(r.user_label)}</bdi> · "
        f"{esc(p.label)} ({esc(span)}) · time zone {esc(r.time_zone)}</p>"
        f"<p>Generated {r.generated_at:%Y-%m-%d %H:%M} UTC."
        f"{esc(before) if r.plays else ''}{esc(images)}</p></header>",
    ]
    if not r.plays:
        body = [empty_state(r), spoken_section(r)]
        return "\n".join([*head, *filter(None, body), footer(r), "</main></body></html>"]) + "\n"
    parts = [
        *head,
        headline(r),
        '<section id="over-time"><h2>Listening over time</h2>'
        f"{html_charts.over_time(r.days, p.first_day, p.last_day)}</section>",
        '<section id="calendar"><h2>Calendar</h2>'
        f"<div class='scroll wide end'>"
        f"{html_charts.calendar_years(r.days, r.calendar_first or p.first_day, p.last_day)}</div>"
        "</section>",
        '<section id="hours"><h2>Hour and weekday</h2><p class="note">Local time, '
        f"{esc(p.label)}.</p>{html_charts.hour_weekday(r.heatmap)}</section>",
        top_sections(r),
        discoveries(r),
        rediscover(r),
        *filter(None, [spoken_section(r)]),
        footer(r),
        "</main></body></html>",
    ]
    return "\n".join(parts) + "\n"


def empty_state(r: ReportData) -> str:
    """An empty period: where the plays are instead (or how to get some), no empty charts."""
    figure = f'<span hidden data-figure="plays" data-value="{int(r.plays)}"></span>'
    text = esc(no_plays_text(r.period, r.user_label, r.newest_day))
    return (
        f'<section id="no-plays"><h2>No plays</h2><p><strong>{text}</strong></p>{figure}</section>'
    )


def footer(r: ReportData) -> str:
    totals = f"{esc(plays_text(r.plays, r.listening_ms))} in this period. " if r.plays else ""
    return (
        f"<footer>{totals}Made by spotify-history-sync from the analytics tables; this file "
        f"makes no requests{' except for album art' if r.images else ''}.</footer>"
    )
