"""`python -m sync report`: the page's figures equal the analytics views, names stay text."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from sync import html_report
from sync.report_data import load_report
from sync.store import users as user_store
from tests.report_support import HOSTILE, hostile_history, parse

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
    cur, longest = conn.execute(
        "select current_days, longest_days from listening_streaks where spotify_user_id = 'alice'"
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
