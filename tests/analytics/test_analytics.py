"""Analytics: local days and hours in the user's zone, listening-time estimates, artists,
the incremental path inside `run`, `aggregate`, `users set-timezone`, removal, views and
row level security, and the opt-in run-summary section."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest

from sync.analytics import upkeep as analytics
from sync.db import schema
from sync.store import aggregates
from sync.store.rows import AlbumRow, ArtistRow, Play, TrackRow
from tests.conftest import add_user
from tests.support.analytics import rebuilt_snapshot, snapshot
from tests.support.spotify_fakes import item, window
from tests.support.store import refresh_tracks, store_plays, upsert_tracks

NEWEST = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
ARTIST_A = ArtistRow("spotify:artist:aaa", "aaa", "Alpha")
ARTIST_B = ArtistRow("spotify:artist:bbb", "bbb", "Beta")
ALBUM = AlbumRow("spotify:album:xyz", "xyz", "Xyz", "album", "2020", None)


def track(n: int, duration_ms: int | None = 200_000, artists=(ARTIST_A,), album=ALBUM) -> TrackRow:
    return TrackRow(f"spotify:track:t{n}", f"t{n}", f"Song {n}", duration_ms, False, False, None,
                    1, 1, album, tuple(artists))  # fmt: skip


def store(conn, key: int, plays: list[tuple[datetime, TrackRow]]) -> list[datetime]:
    """Insert API plays and refresh, in one transaction, as the pipeline does."""
    with conn.transaction():
        new = store_plays(conn, key, [Play(t, tr) for t, tr in plays])
        aggregates.refresh_days(conn, key, new)
    return new


def user_with_zone(conn, zone: str, user_id: str = "alice") -> int:
    key = add_user(conn, user_id, f"refresh-{user_id}-0001")
    conn.execute("update user_tokens set time_zone = %s where id = %s", (zone, key))
    return key


def days(conn, key: int) -> dict[date, tuple]:
    rows = conn.execute(
        "select day, plays, listening_ms, estimated_ms from listening_days where user_id = %s",
        (key,),
    ).fetchall()
    return {d: (p, ms, est) for d, p, ms, est in rows}


def hours(conn, key: int, day: date) -> list[int]:
    return conn.execute(
        "select hour_plays from listening_days where user_id = %s and day = %s", (key, day)
    ).fetchone()[0]


def assert_equals_rebuild(conn, *keys: int) -> None:
    assert snapshot(conn, keys) == rebuilt_snapshot(conn, keys)


# -- time zones ---------------------------------------------------------------------
def test_days_and_hours_follow_new_york_across_both_dst_switches(conn):
    key = user_with_zone(conn, "America/New_York")
    t = track(1, duration_ms=60_000)
    store(conn, key, [
        (datetime(2026, 3, 8, 4, 59, 59, tzinfo=UTC), t),   # Sat 23:59:59 EST
        (datetime(2026, 3, 8, 5, 0, 0, tzinfo=UTC), t),     # Sun 00:00 EST
        (datetime(2026, 3, 8, 7, 30, 0, tzinfo=UTC), t),    # 03:30 EDT: 02:xx never happened
        (datetime(2026, 3, 9, 3, 59, 0, tzinfo=UTC), t),    # Sun 23:59 EDT
        (datetime(2026, 3, 9, 4, 0, 0, tzinfo=UTC), t),     # Mon 00:00 EDT
        (datetime(2026, 11, 1, 5, 30, 0, tzinfo=UTC), t),   # 01:30 EDT
        (datetime(2026, 11, 1, 6, 30, 0, tzinfo=UTC), t),   # 01:30 EST, the hour again
        (datetime(2026, 11, 2, 4, 59, 0, tzinfo=UTC), t),   # Sun 23:59 EST
    ])  # fmt: skip
    got = {d: p for d, (p, _, _) in days(conn, key).items()}
    assert got == {
        date(2026, 3, 7): 1,
        date(2026, 3, 8): 3,
        date(2026, 3, 9): 1,
        date(2026, 11, 1): 3,
    }
    assert hours(conn, key, date(2026, 3, 8))[0] == 1 and hours(conn, key, date(2026, 3, 8))[3] == 1
    assert hours(conn, key, date(2026, 3, 8))[2] == 0
    assert hours(conn, key, date(2026, 11, 1))[1] == 2  # both 01:30s fall in hour 1
    assert hours(conn, key, date(2026, 11, 1))[23] == 1
    assert_equals_rebuild(conn, key)


@pytest.mark.parametrize(
    "zone, before, after",
    [
        # Kolkata +05:30: midnight is 18:30 UTC
        ("Asia/Kolkata", datetime(2026, 5, 1, 18, 29, 59, 999_000, tzinfo=UTC),
         datetime(2026, 5, 1, 18, 30, tzinfo=UTC)),
        # Kathmandu +05:45: midnight is 18:15 UTC
        ("Asia/Kathmandu", datetime(2026, 5, 1, 18, 14, 59, tzinfo=UTC),
         datetime(2026, 5, 1, 18, 15, tzinfo=UTC)),
        # Lord Howe in summer +11: midnight is 13:00 UTC
        ("Australia/Lord_Howe", datetime(2026, 1, 10, 12, 59, 59, tzinfo=UTC),
         datetime(2026, 1, 10, 13, 0, tzinfo=UTC)),
        # Lord Howe in winter +10:30: midnight is 13:30 UTC
        ("Australia/Lord_Howe", datetime(2026, 7, 10, 13, 29, 59, tzinfo=UTC),
         datetime(2026, 7, 10, 13, 30, tzinfo=UTC)),
    ],
)  # fmt: skip
def test_midnight_in_half_hour_and_45_minute_zones(conn, zone, before, after):
    key = user_with_zone(conn, zone)
    store(conn, key, [(before, track(1)), (after, track(2))])
    local = zoneinfo.ZoneInfo(zone)
    first, second = before.astimezone(local).date(), after.astimezone(local).date()
    assert second == first + timedelta(days=1)
    assert sorted(days(conn, key)) == [first, second]
    assert hours(conn, key, first)[23] == 1 and hours(conn, key, second)[0] == 1


# -- listening time -----------------------------------------------------------------
def test_estimate_is_track_length_capped_by_time_since_the_previous_play(conn):
    key = user_with_zone(conn, "UTC")
    t0 = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
    store(conn, key, [
        (t0, track(1, 200_000)),                                # first play ever: its length
        (t0 + timedelta(seconds=60), track(2, 200_000)),        # skipped after 60 s: 60 s
        (t0 + timedelta(minutes=11), track(3, 200_000)),        # a pause before: its length
        (t0 + timedelta(minutes=12), track(4, None)),           # unknown length: 0
    ])  # fmt: skip
    assert days(conn, key)[date(2026, 6, 1)] == (4, 460_000, 460_000)
    # an export play carries exact ms_played, which is used as is and is not an estimate
    ids = upsert_tracks(conn, [track(5)])
    with conn.transaction():
        conn.execute(
            "insert into listening_history (user_id, played_at, track_id, ms_played, source) "
            "values (%s, %s, %s, 5000, 1)",
            (key, t0 + timedelta(minutes=30), ids["spotify:track:t5"]),
        )
        aggregates.refresh_days(conn, key, [t0 + timedelta(minutes=30)])
    assert days(conn, key)[date(2026, 6, 1)] == (5, 465_000, 460_000)
    assert_equals_rebuild(conn, key)


def test_a_late_play_changes_the_estimate_of_the_next_play_on_the_next_day(conn):
    key = user_with_zone(conn, "Asia/Kolkata")
    hour_long = track(1, duration_ms=3_600_000)
    late_evening = datetime(2026, 5, 1, 17, 30, tzinfo=UTC)  # 23:00 local, 1 May
    after_midnight = datetime(2026, 5, 1, 19, 0, tzinfo=UTC)  # 00:30 local, 2 May
    store(conn, key, [(late_evening, hour_long), (after_midnight, hour_long)])
    assert days(conn, key)[date(2026, 5, 2)] == (1, 3_600_000, 3_600_000)
    # a play at 23:50 on 1 May arrives late: the 00:30 play now ran at most 40 minutes
    store(conn, key, [(datetime(2026, 5, 1, 18, 20, tzinfo=UTC), hour_long)])
    assert days(conn, key)[date(2026, 5, 2)] == (1, 2_400_000, 2_400_000)
    assert days(conn, key)[date(2026, 5, 1)] == (2, 6_600_000, 6_600_000)
    assert_equals_rebuild(conn, key)


def test_corrected_ms_played_replaces_the_estimate(conn):
    key = user_with_zone(conn, "UTC")
    t0 = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
    store(conn, key, [(t0, track(1)), (t0 + timedelta(minutes=10), track(2))])
    with conn.transaction():  # what an import does when it learns the exact time
        conn.execute(
            "update listening_history set ms_played = 1234, source = 1 "
            "where user_id = %s and played_at = %s",
            (key, t0),
        )
        aggregates.refresh_days(conn, key, [t0])
    assert days(conn, key)[date(2026, 6, 1)] == (2, 201_234, 200_000)
    assert_equals_rebuild(conn, key)


def test_every_credited_artist_gets_the_whole_play(conn):
    key = user_with_zone(conn, "UTC")
    duet = track(1, 180_000, artists=(ARTIST_A, ARTIST_B))
    store(conn, key, [(datetime(2026, 6, 1, 10, tzinfo=UTC), duet),
                      (datetime(2026, 6, 1, 11, tzinfo=UTC), track(2, 120_000))])  # fmt: skip
    rows = conn.execute(
        "select a.name, t.plays, t.listening_ms from listening_entity_totals t "
        "join artists a on a.id = t.entity_id where t.user_id = %s and t.kind = 2 order by 1",
        (key,),
    ).fetchall()
    assert rows == [("Alpha", 2, 300_000), ("Beta", 1, 180_000)]
    assert conn.execute(
        "select distinct_artists from listening_days where user_id = %s", (key,)
    ).fetchone() == (2,)


def test_refresh_tracks_updates_plays_whose_track_changed(conn):
    key = user_with_zone(conn, "UTC")
    unknown = track(1, None, album=None)
    store(conn, key, [(datetime(2026, 6, 1, 10, tzinfo=UTC), unknown)])
    assert days(conn, key)[date(2026, 6, 1)] == (1, 0, 0)
    upsert_tracks(conn, [track(2)])  # now the album exists
    with conn.transaction():  # e.g. an imported placeholder completed from the Web API
        tid = conn.execute(
            "update tracks set duration_ms = 90000, "
            "album_id = (select id from albums where uri = %s) "
            "where uri = 'spotify:track:t1' returning id",
            (ALBUM.uri,),
        ).fetchone()[0]
        refresh_tracks(conn, [tid])
    assert days(conn, key)[date(2026, 6, 1)] == (1, 90_000, 90_000)
    albums = conn.execute(
        "select count(*) from listening_entity_totals where user_id = %s and kind = 3", (key,)
    ).fetchone()[0]
    assert albums == 1
    assert_equals_rebuild(conn, key)


# -- the job ----------------------------------------------------------------------
def test_run_keeps_analytics_current_in_the_users_zone(run, spotify, conn):
    key = user_with_zone(conn, "Asia/Kathmandu")
    first = window(NEWEST, 30)
    spotify.add_user("alice", "refresh-alice-0001", first)
    assert run("run").code == 0
    assert_equals_rebuild(conn, key)
    # next hour: new plays, and a late one between two stored plays
    late = item(NEWEST - timedelta(minutes=6), 99)
    newer = [item(NEWEST + timedelta(minutes=m), 40 + m) for m in (12, 8, 4)]
    spotify.plays["alice"] = newer + first[:1] + [late] + first[1:]
    assert run("run", "--json").report["users"][0]["new_tracks"] == 4
    total = conn.execute(
        "select sum(plays) from listening_days where user_id = %s", (key,)
    ).fetchone()[0]
    assert total == 34
    local = NEWEST.astimezone(zoneinfo.ZoneInfo("Asia/Kathmandu")).date()
    assert date(2026, 11, 28) == local and local in days(conn, key)
    assert_equals_rebuild(conn, key)


def test_dry_run_leaves_the_analytics_untouched(run, spotify, conn):
    user_with_zone(conn, "UTC")
    spotify.add_user("alice", "refresh-alice-0001", window(NEWEST, 5))
    assert run("run", "--dry-run").code == 0
    assert conn.execute("select count(*) from listening_days").fetchone()[0] == 0
    assert conn.execute("select count(*) from listening_entity_totals").fetchone()[0] == 0


def test_summary_has_no_listening_details_unless_opted_in(run, spotify, conn):
    user_with_zone(conn, "Europe/Berlin")
    spotify.add_user("alice", "refresh-alice-0001", window(NEWEST, 5))
    path = run.actions()
    assert run("run").code == 0
    with open(path) as fh:
        text = fh.read()
    assert "mermaid" not in text and "Artist" not in text and "Song" not in text


def test_opted_in_summary_shows_todays_top_artists_and_a_24_hour_chart(run, spotify, conn):
    user_with_zone(conn, "UTC")
    now = datetime.now(UTC).replace(microsecond=0)
    spotify.add_user("alice", "refresh-alice-0001", window(now - timedelta(minutes=1), 3))
    path = run.actions()
    run.env(SYNC_SUMMARY_DETAILS="true")
    assert run("run").code == 0
    with open(path) as fh:
        text = fh.read()
    assert "SYNC_SUMMARY_DETAILS is on" in text
    assert "Top artists today" in text and "Artist " in text
    assert "```mermaid\nxychart-beta" in text
    bars = [line for line in text.splitlines() if line.strip().startswith("bar [")]
    assert len(bars) == 1 and sum(int(n) for n in bars[0].split("[")[1].rstrip("]").split(",")) == 3


def test_details_markdown_escapes_names():
    details = [analytics.UserDetails(1, "UTC", "2026-11-28", 2, [("*bold* [x](y) | z", 2)],
                                     [(f"{h:02d}h", 0) for h in range(24)])]  # fmt: skip
    text = analytics.details_markdown(details, lambda k: f"user-{k}")
    assert r"\*bold\* \[x\]\(y\) \| z" in text
    assert 'y-axis "plays" 0 --> 1' in text


# -- commands -----------------------------------------------------------------------
def test_set_timezone_validates_and_rebuilds(run, conn):
    key = user_with_zone(conn, "UTC")
    store(conn, key, [(datetime(2026, 5, 1, 20, 0, tzinfo=UTC), track(1))])
    assert list(days(conn, key)) == [date(2026, 5, 1)]
    bad = run("users", "set-timezone", "alice", "Mars/Olympus_Mons")
    assert bad.code == 2
    assert bad.err.strip().count("\n") == 0 and "Traceback" not in bad.err
    assert "unknown time zone 'Mars/Olympus_Mons'" in bad.err and "Europe/Berlin" in bad.err
    ok = run("users", "set-timezone", "user-1", "asia/kolkata")  # alias, any case
    assert ok.code == 0, ok.err
    assert "Asia/Kolkata" in ok.out
    assert conn.execute("select time_zone from user_tokens").fetchone()[0] == "Asia/Kolkata"
    assert list(days(conn, key)) == [date(2026, 5, 2)]  # 20:00 UTC is 01:30 the next day


def test_set_timezone_unknown_user(run, conn):
    result = run("users", "set-timezone", "nobody", "UTC")
    assert result.code == 2 and "no user 'nobody'" in result.err


def test_aggregate_rebuilds_stale_users_and_everything_with_full(run, conn):
    key = user_with_zone(conn, "UTC")
    other = user_with_zone(conn, "UTC", "bob")
    store(conn, other, [(datetime(2026, 5, 1, tzinfo=UTC), track(1))])
    ids = upsert_tracks(conn, [track(1)])
    conn.execute(  # plays written by other means, without a refresh
        "insert into listening_history (user_id, played_at, track_id) values (%s, %s, %s)",
        (key, datetime(2026, 5, 1, tzinfo=UTC), ids["spotify:track:t1"]),
    )
    first = run("aggregate")
    assert first.code == 0, first.err
    assert "user-1: rebuilt from 1 play " in first.out and "user-2" not in first.out
    assert days(conn, key) == {date(2026, 5, 1): (1, 200_000, 200_000)}
    assert "up to date for 2 users" in run("aggregate").out
    full = run("aggregate", "--full", "--user", "bob")
    assert "user-2: rebuilt" in full.out and "user-1" not in full.out
    assert run("aggregate", "--user", "nobody").code == 2


def test_removing_a_user_removes_their_aggregates(conn):
    key = user_with_zone(conn, "UTC")
    store(conn, key, [(datetime(2026, 5, 1, tzinfo=UTC), track(1))])
    conn.execute("delete from user_tokens where id = %s", (key,))
    for table in ("listening_days", "listening_day_entities", "listening_entity_totals",
                  "listening_hour_weekday"):  # fmt: skip
        assert conn.execute(f"select count(*) from {table}").fetchone()[0] == 0


def test_a_zone_postgres_does_not_know_is_refused_by_the_table(conn):
    key = add_user(conn)
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("update user_tokens set time_zone = 'Nowhere/Nothing' where id = %s", (key,))


def test_migration_builds_aggregates_for_users_with_history(empty_db_url, tmp_path):
    only_core = tmp_path / "sql"
    only_core.mkdir()
    (only_core / "001_core.sql").write_text((schema.SQL_DIR / "001_core.sql").read_text())
    with psycopg.connect(empty_db_url) as conn:
        schema.migrate(conn, only_core)
        key = add_user(conn)
        conn.execute(
            "insert into tracks (uri, name, duration_ms) values ('spotify:track:t1', 'x', 200000)"
        )
        conn.execute(
            "insert into listening_history (user_id, played_at, track_id) "
            "select %s, %s, id from tracks",
            (key, datetime(2026, 5, 1, 12, tzinfo=UTC)),
        )
        conn.commit()
        schema.migrate(conn)  # the rest, analytics included
        assert days(conn, key) == {date(2026, 5, 1): (1, 200_000, 200_000)}


def test_views_show_nothing_to_a_role_without_a_policy(conn):
    """security_invoker views keep row level security: an API role sees no rows."""
    key = user_with_zone(conn, "UTC")
    store(conn, key, [(datetime(2026, 5, 1, tzinfo=UTC), track(1))])
    conn.execute(
        "with i as (insert into spoken_items (kind, show, name) values (1, 'Show', 'Ep') "
        "returning id) insert into spoken_plays (played_at, user_id, item_id, ms_played, source) "
        "select '2026-05-01 10:00Z', %s, id, 600000, 1 from i",
        (key,),
    )
    views = [r[0] for r in conn.execute(
        "select viewname from pg_views where schemaname = 'public' order by 1")]  # fmt: skip
    assert {"plays", "top_tracks", "spoken_plays_view"} <= set(views)  # every view, new ones too
    role = f"shs_anon_{key}_{id(conn) % 100000}"
    conn.execute(f'create role "{role}"')
    try:
        conn.execute(f'grant select on all tables in schema public to "{role}"')
        conn.execute(f'grant execute on all functions in schema public to "{role}"')
        with conn.transaction() as tx:
            conn.execute(f'set local role "{role}"')
            for view in views:
                assert conn.execute(f"select count(*) from {view}").fetchone()[0] == 0, view
            raise psycopg.Rollback(tx)
        for view in ("top_tracks", "spoken_plays_view"):  # the owner sees them
            assert conn.execute(f"select count(*) from {view}").fetchone()[0] > 0, view
    finally:
        conn.execute(f'drop owned by "{role}"')
        conn.execute(f'drop role "{role}"')


def test_summary_details_count_plays_per_local_hour_in_a_half_hour_zone(conn):
    key = user_with_zone(conn, "Asia/Kolkata")
    store(conn, key, [
        (datetime(2026, 11, 27, 12, 20, tzinfo=UTC), track(1)),  # 17:50 on the 27th: too old
        (datetime(2026, 11, 27, 12, 35, tzinfo=UTC), track(1)),  # 18:05 on the 27th
        (datetime(2026, 11, 28, 11, 20, tzinfo=UTC), track(2, artists=(ARTIST_B,))),  # 16:50
        (datetime(2026, 11, 28, 11, 45, tzinfo=UTC), track(1)),  # 17:15
    ])  # fmt: skip
    now = datetime(2026, 11, 28, 12, 10, tzinfo=UTC)  # 17:40 in Kolkata
    (d,) = analytics.summary_details(conn, [key], now)
    assert (d.today, d.plays_today) == ("2026-11-28", 2)
    assert d.top_artists == [("Alpha", 1), ("Beta", 1)]
    assert [label for label, _ in d.hours][:2] == ["18h", "19h"] and d.hours[-1][0] == "17h"
    assert [n for _, n in d.hours] == [1] + [0] * 21 + [1, 1]
