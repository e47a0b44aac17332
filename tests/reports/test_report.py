"""`python -m sync report`: the page's figures equal the analytics views, names stay text."""

from __future__ import annotations

import logging
import sys
import webbrowser
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from sync.analytics.listening import Period
from sync.commands import report as report_command
from sync.commands.report import ReportOptions
from sync.config import load_settings
from sync.reports import html as html_report
from sync.reports.data import ReportData, load_report
from sync.store import users as user_store
from tests.conftest import add_user
from tests.support.report import HOSTILE, hostile_history, parse

PERIODS = ["7d", "4w", "6m", "12m", "all", str(datetime.now(UTC).year - 1)]
ALLOWED_TAGS = {
    "html", "head", "meta", "title", "style", "body", "main", "header", "h1", "h2", "p",
    "section", "dl", "div", "dt", "dd", "small", "span", "svg", "defs", "pattern", "rect",
    "line", "text", "figure", "figcaption", "details", "summary", "table", "thead", "tbody",
    "tr", "th", "td", "bdi", "footer", "strong",
}  # fmt: skip


@pytest.fixture
def alice(conn) -> user_store.UserRef:
    hostile_history(conn)
    return user_store.resolve_user(conn, "alice")


@pytest.mark.parametrize("period", PERIODS)
def test_headline_and_top_lists_equal_the_views(conn, alice, period):
    page = parse(html_report.render_report(load_report(conn, alice, period, "user-1")))
    totals = conn.execute(
        "select plays, listening_ms, estimated_ms, days_listened, distinct_tracks, "
        "distinct_artists, distinct_albums from listening_period_totals "
        "where spotify_user_id = 'alice' and period = %s",
        (period,),
    ).fetchone()
    names = ["plays", "listening_ms", "estimated_ms", "days_listened", "distinct_tracks",
             "distinct_artists", "distinct_albums"]  # fmt: skip
    assert totals is not None and totals[0] > 0
    assert {n: page.figures[n] for n in names} == dict(zip(names, totals, strict=True))
    if period.isdigit():  # a past year's streaks end with the year: counted here from its days
        cur, longest = _year_streaks(conn, alice.key, int(period))
    else:
        cur, longest = conn.execute(
            "select current_days, longest_days from listening_streaks "
            "where spotify_user_id = 'alice'"
        ).fetchone()
    assert (page.figures["current_streak"], page.figures["longest_streak"]) == (cur, longest)
    # each top list: the view's (rank, plays) in order, under the section's heading
    for kind, view in (("artists", "top_artists"), ("tracks", "top_tracks"),
                       ("albums", "top_albums")):  # fmt: skip
        expected = conn.execute(
            f"select rank, plays from {view} where spotify_user_id = 'alice' and period = %s "
            "order by rank",
            (period,),
        ).fetchall()
        rows = _section_rows(page, f"top-{kind}")
        assert rows == [(r, int(p)) for r, p in expected], kind


def _year_streaks(conn, key: int, year: int) -> tuple[int, int]:
    """(current as of 31 December, longest) runs of listening days inside a past year."""
    days = {d for (d,) in conn.execute(
        "select day from listening_days where user_id = %s and extract(year from day) = %s",
        (key, year))}  # fmt: skip
    longest = max((_run_back(days, d) for d in days), default=0)
    last = date(year, 12, 31)
    return _run_back(days, last if last in days else last - timedelta(days=1)), longest


def _run_back(days: set[date], day: date) -> int:
    n = 0
    while day - timedelta(days=n) in days:
        n += 1
    return n


def _section_rows(page, section_id: str) -> list[tuple[int, int]]:
    inside, rows = False, []
    for tag, attrs in page.elements:
        if tag == "section":
            inside = attrs.get("id") == section_id
        elif inside and tag == "tr" and "data-rank" in attrs:
            rows.append((int(attrs["data-rank"]), int(attrs["data-plays"])))
    return rows


@pytest.mark.parametrize("images", [False, True])
def test_hostile_names_render_as_text_only(conn, alice, images):
    conn.execute("update albums set image_url = 'https://i.scdn.co/image/ab\"><script>x'")
    page_text = html_report.render_report(load_report(conn, alice, "all", "user-1", images=images))
    page = parse(page_text)
    assert page.tags() <= ALLOWED_TAGS | ({"img"} if images else set()), page.tags()
    for tag, attrs in page.elements:
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        if tag == "img":
            assert attrs["src"] == 'https://i.scdn.co/image/ab"><script>x'
    text = "".join(page.text)
    for name in HOSTILE[:4]:
        assert " ".join(name.split()) in text
    assert "L" * 250 in text and "L" * 301 not in text  # long names are shortened
    assert "<script" not in page_text.replace("&lt;script", "")
    csp = next(a["content"] for t, a in page.elements if a.get("http-equiv"))
    assert csp.startswith("default-src 'none'; style-src 'unsafe-inline'; img-src data:")
    assert ("https://i.scdn.co" in csp) is images


@pytest.mark.parametrize("period", [p for p in PERIODS if p != "all"])
def test_discoveries_are_the_artists_first_played_in_the_period(conn, alice, period):
    data = load_report(conn, alice, period, "user-1")
    expected = conn.execute(
        """with p as (select ta.artist_id, (h.played_at at time zone 'Europe/Berlin')::date as d
                        from listening_history h
                        join (select distinct track_id, artist_id from track_artists) ta
                          on ta.track_id = h.track_id)
           select a.name, count(*) filter (where p.d between %(f)s and %(l)s)
             from p join artists a on a.id = p.artist_id
            group by a.name having min(p.d) between %(f)s and %(l)s""",
        {"f": data.period.first_day, "l": data.period.last_day},
    ).fetchall()
    assert sorted((e.name, e.plays) for e in data.discoveries) == sorted(expected)
    assert data.discoveries_total == len(expected)


def test_rediscover_and_rank_changes(conn, alice):
    data = load_report(conn, alice, "12m", "user-1")
    # track 98 was played six times 300 days ago and never since
    assert [(e.name, e.plays) for e in data.rediscover] == [("Song 98", 6)]
    last = conn.execute(
        "select max((played_at at time zone 'Europe/Berlin')::date) from listening_history h "
        "join tracks t on t.id = h.track_id where t.name = 'Song 98'"
    ).fetchone()[0]
    assert data.rediscover[0].last_day == last
    assert [e.name for e in data.discoveries] == ["Alpha"]
    # ranks before: the previous 12 months, ranked the way listening_top ranks
    prev = data.previous
    for entry in data.top["artists"]:
        rank = conn.execute(
            """select r from (select a.name, row_number() over (
                                  order by e.plays desc, e.listening_ms desc, e.entity_id) r
                                from listening_entities(1, 2::smallint, %s, %s) e
                                join artists a on a.id = e.entity_id) x where name = %s""",
            (prev.first_day, prev.last_day, entry.name),
        ).fetchone()
        assert entry.previous_rank == (rank[0] if rank else None)
    everything = load_report(conn, alice, "all", "user-1")
    assert everything.previous is None and everything.discoveries == []


def test_command_writes_one_file_per_user_and_prints_paths(run, conn, alice):
    result = run("report", "--period", "6m")
    assert result.code == 0, result.err
    path = Path(result.out.strip())
    assert path.name == "report-user-1-6m.html" and path.exists()
    assert parse(path.read_text()).figures["plays"] > 0
    result = run("report", "--all", "--out-dir", "reports", "--period", "4w")
    assert result.code == 0 and result.out.strip().endswith("report-user-1-4w.html")
    assert run("report", "--period", "5x").code == 2
    images = run("report", "--images", "--out", "x.html")
    assert "Spotify's image servers" in images.out


# -- issue 16: the file's size, --open without a browser, an empty period ---------------
def _report_args(tmp_path, **kw) -> ReportOptions:
    values = dict(period="4w", user=None, all=False, out=str(tmp_path / "r.html"),
                  out_dir=str(tmp_path), images=False, open=False)  # fmt: skip
    values.update(kw)
    return ReportOptions(**values)


def test_written_bytes_are_the_file_s_size_not_its_characters(
    conn, alice, db_url, tmp_path, caplog
):
    conn.execute("update artists set name = 'Sigur Rós' where uri = 'spotify:artist:h0'")
    conn.execute("update artists set name = 'Beyoncé' where uri = 'spotify:artist:h1'")
    settings = load_settings({"DATABASE_URL": db_url})
    with caplog.at_level(logging.INFO, logger="sync.commands.report"):
        assert report_command.cmd_report(settings, _report_args(tmp_path)) == 0
    path = tmp_path / "r.html"
    text = path.read_text(encoding="utf-8")
    assert "Sigur Rós" in text and "Beyoncé" in text
    assert len(text) != path.stat().st_size  # the check below can tell them apart
    line = next(r.getMessage() for r in caplog.records if "written" in r.getMessage())
    assert line.endswith(f"written: {path.stat().st_size} bytes"), line


@pytest.mark.parametrize("outcome", ["false", "raises"])
def test_open_without_a_browser_says_so_with_the_file_url(
    conn, alice, db_url, tmp_path, capsys, outcome
):
    opened: list[str] = []

    def opener(url: str) -> bool:
        opened.append(url)
        if outcome == "raises":
            raise webbrowser.Error("could not locate runnable browser")
        return False

    settings = load_settings({"DATABASE_URL": db_url})
    args = _report_args(tmp_path, open=True)
    assert report_command.cmd_report(settings, args, opener=opener) == 0
    url = (tmp_path / "r.html").resolve().as_uri()
    assert opened == [url]
    out = capsys.readouterr().out.splitlines()
    assert out[0] == str(tmp_path / "r.html")
    assert out[1:] == [f"no browser could be opened here: open {url} by hand"]


def test_open_with_a_browser_prints_only_the_path(conn, alice, db_url, tmp_path, capsys):
    settings = load_settings({"DATABASE_URL": db_url})
    opened: list[str] = []
    assert (
        report_command.cmd_report(
            settings, _report_args(tmp_path, open=True), opener=lambda u: opened.append(u) or True
        )
        == 0
    )
    assert capsys.readouterr().out == f"{tmp_path / 'r.html'}\n" and len(opened) == 1


def test_the_default_opener_does_not_try_without_a_display(monkeypatch):
    tried: list[str] = []
    monkeypatch.setattr(webbrowser, "open", lambda url: tried.append(url) or True)
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert report_command.open_in_browser("file:///x.html") is False and tried == []
    monkeypatch.setenv("DISPLAY", ":0")
    assert report_command.open_in_browser("file:///x.html") is True and tried == ["file:///x.html"]
    monkeypatch.setattr(webbrowser, "open", lambda url: (_ for _ in ()).throw(OSError("no")))
    assert report_command.open_in_browser("file:///x.html") is False


def _no_charts(page) -> None:
    assert "svg" not in page.tags() and "table" not in page.tags()
    ids = {a.get("id") for _, a in page.elements}
    assert not ids & {"figures", "over-time", "calendar", "hours", "top-artists"}, ids


def test_an_empty_period_says_so_names_the_newest_play_and_suggests_periods(conn, alice):
    newest = conn.execute(
        "select max(day) from listening_days where user_id = %s", (alice.key,)
    ).fetchone()[0]
    page_text = html_report.render_report(load_report(conn, alice, "1999", "user-1"))
    page = parse(page_text)
    _no_charts(page)
    text = " ".join("".join(page.text).split())
    assert "No plays between 1999-01-01 and 1999-12-31." in text
    assert f"The newest play is from {newest:%Y-%m-%d}" in text
    assert f"--period all or --period {newest.year}" in text
    assert "0.0" not in text and "all exact" not in text
    assert page.figures == {"plays": 0}
    # a rolling period gone quiet: a year after the newest play, the last 7 days are empty
    later = datetime.combine(newest, datetime.min.time(), UTC) + timedelta(days=400)
    quiet = parse(html_report.render_report(load_report(conn, alice, "7d", "user-1", now=later)))
    _no_charts(quiet)
    quiet_text = " ".join("".join(quiet.text).split())
    assert f"The newest play is from {newest:%Y-%m-%d}" in quiet_text
    assert f"--period all or --period {newest.year}" in quiet_text


def test_a_user_without_any_plays_gets_how_to_get_some(conn):
    add_user(conn, "nobody", "refresh-nobody-0001")
    user = user_store.resolve_user(conn, "nobody")
    page = parse(html_report.render_report(load_report(conn, user, "all", "user-1")))
    _no_charts(page)
    text = " ".join("".join(page.text).split())
    assert "No plays yet for user-1" in text and "python -m sync import" in text
    assert "python -m sync run" in text and "--period all" not in text


def test_hours_figure_reads_sensibly_for_a_few_minutes():
    period = Period("7d", "last 7 days", date(2026, 11, 22), date(2026, 11, 28))
    r = ReportData(user_label="user-1", time_zone="UTC", today=date(2026, 11, 28),
                   period=period, generated_at=datetime(2026, 11, 28, tzinfo=UTC),
                   plays=2, listening_ms=7 * 60_000, days_listened=1)  # fmt: skip
    shown = html_report.render_report(r)
    assert 'data-value="420000">7 min<small>all exact</small>' in shown
    r.estimated_ms = 1_000  # a sliver estimated: not "0% estimated"
    assert 'data-value="420000">7 min<small>under 1% estimated</small>' in (
        html_report.render_report(r)
    )
    r.listening_ms = r.estimated_ms = 30_000
    assert 'data-value="30000">under 1 min<small>all estimated</small>' in (
        html_report.render_report(r)
    )
    r.listening_ms, r.estimated_ms = 5 * 3_600_000 + 30 * 60_000, 0
    assert 'data-value="19800000">5.5 h<small>all exact</small>' in html_report.render_report(r)
