"""Property-style checks with random histories: the incrementally maintained aggregates equal a
from-scratch rebuild row for row, match a Python model of the daily figures, and the views
answer what brute-force queries over listening_history answer.

Histories are seeded (reproducible), for several users in zones with DST switches and
half-hour or 45-minute offsets, with plays bunched around local midnights and DST
transitions, arriving late and out of order, from the API (no ms_played) and from exports
(exact ms_played), and with ms_played corrected afterwards, as an import does.
"""

from __future__ import annotations

import random
import zoneinfo
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest

from sync.store import aggregates
from sync.store.rows import Play
from tests.conftest import add_user
from tests.support.analytics import (
    StoredPlay,
    array_problems,
    brute_heatmap,
    brute_top,
    brute_totals,
    catalogue,
    model_days,
    rebuilt_snapshot,
    snapshot,
    streaks,
)
from tests.support.store import store_plays, upsert_tracks

ZONES = [
    "America/New_York",  # DST, whole hours
    "Asia/Kolkata",  # +05:30
    "Australia/Lord_Howe",  # +10:30 / +11: a half-hour DST shift
    "Asia/Kathmandu",  # +05:45
    "Europe/London",
    "Pacific/Chatham",  # +12:45 / +13:45
    "UTC",
]

# Instants where something happens: DST switches of the zones above, a new year, month ends.
HOT_SPOTS = [
    datetime(2025, 3, 9, 7, 0, tzinfo=UTC),  # New York springs forward
    datetime(2025, 11, 2, 6, 0, tzinfo=UTC),  # New York falls back
    datetime(2026, 3, 8, 7, 0, tzinfo=UTC),
    datetime(2026, 11, 1, 6, 0, tzinfo=UTC),
    datetime(2025, 4, 5, 15, 0, tzinfo=UTC),  # Lord Howe 02:00 -> 01:30
    datetime(2025, 10, 4, 15, 30, tzinfo=UTC),  # Lord Howe 02:00 -> 02:30
    datetime(2026, 4, 4, 15, 0, tzinfo=UTC),
    datetime(2026, 3, 29, 1, 0, tzinfo=UTC),  # London
    datetime(2026, 4, 4, 14, 0, tzinfo=UTC),  # Chatham
    datetime(2025, 12, 31, 12, 0, tzinfo=UTC),  # new year somewhere
    datetime(2026, 1, 31, 18, 30, tzinfo=UTC),  # month end in Kolkata
    datetime(2026, 6, 30, 18, 15, tzinfo=UTC),  # month end in Kathmandu
]


@dataclass
class Listener:
    key: int
    zone: str
    plays: list[StoredPlay] = field(default_factory=list)  # what should be stored


def _ms(dt: datetime) -> datetime:
    return dt.replace(microsecond=dt.microsecond // 1000 * 1000)


def random_history(rnd: random.Random, tracks, now: datetime, size: int, zone: str) -> list[tuple]:
    """(played_at, track) bunches around hot spots and local midnights, plus recent plays."""
    tz = zoneinfo.ZoneInfo(zone)
    starts = [t - timedelta(hours=rnd.uniform(0, 6)) for t in rnd.sample(HOT_SPOTS, 5)]
    starts += [now - timedelta(days=rnd.uniform(0, 40)) for _ in range(4)]
    starts += [
        datetime(2024, 11, 1, tzinfo=UTC) + timedelta(days=rnd.uniform(0, 750)) for _ in range(3)
    ]
    midnights = set()
    for _ in range(12):  # shortly before a local midnight, songs back to back
        day = date(2024, 11, 1) + timedelta(days=rnd.randint(0, 740))
        midnight = datetime.combine(day, datetime.min.time(), tz).astimezone(UTC)
        midnights.add(midnight - timedelta(minutes=rnd.uniform(5, 30)))
    starts += sorted(midnights)
    out, seen = [], set()
    while len(out) < size:
        t = rnd.choice(starts)
        busy = t in midnights
        for _ in range(rnd.randint(5, 30)):
            # mostly back-to-back songs (shorter than the song: skips), sometimes a pause
            if busy:
                gap = rnd.uniform(5, 200)
            else:
                gap = rnd.choice([rnd.uniform(5, 90), rnd.uniform(90, 420), rnd.uniform(600, 7200)])
            t = _ms(t + timedelta(seconds=gap))
            if t < now and t not in seen:
                seen.add(t)
                out.append((t, rnd.choice(tracks)))
    return out[:size]


def feed(conn: psycopg.Connection, who: Listener, batch: list[tuple], kind: str) -> list[datetime]:
    """Store a batch the way the pipeline (API) or an import (export, exact ms) does."""
    with conn.transaction():
        if kind == "api":
            new = store_plays(conn, who.key, [Play(t, tr) for t, tr, _ in batch])
            stored = {t for t in new}
            who.plays += [StoredPlay(t, tr, None) for t, tr, _ in batch if t in stored]
        else:
            ids = upsert_tracks(conn, [tr for _, tr, _ in batch])
            rows = conn.execute(
                """insert into listening_history (user_id, played_at, track_id, ms_played, source)
                   select %s, t, k, m, 1
                     from unnest(%s::timestamptz[], %s::integer[], %s::integer[]) as u(t, k, m)
                   on conflict do nothing returning played_at""",
                (who.key, [t for t, _, _ in batch], [ids[tr.uri] for _, tr, _ in batch],
                 [ms for _, _, ms in batch]),
            ).fetchall()  # fmt: skip
            new = [r[0] for r in rows]
            stored = set(new)
            who.plays += [StoredPlay(t, tr, ms) for t, tr, ms in batch if t in stored]
        aggregates.refresh_days(conn, who.key, new)
    return new


def correct_ms(conn: psycopg.Connection, who: Listener, rnd: random.Random) -> None:
    """An import that learns exact ms_played for some API plays updates them."""
    api = [p for p in who.plays if p.ms_played is None]
    if not api:
        return
    chosen = rnd.sample(api, min(len(api), rnd.randint(1, 6)))
    values = {p.played_at: rnd.randint(0, 400_000) for p in chosen}
    with conn.transaction():
        rows = conn.execute(
            """update listening_history h set ms_played = u.m, source = 1
                 from unnest(%s::timestamptz[], %s::integer[]) as u(t, m)
                where h.user_id = %s and h.played_at = u.t returning h.played_at""",
            (list(values), list(values.values()), who.key),
        ).fetchall()
        aggregates.refresh_days(conn, who.key, [r[0] for r in rows])
    who.plays = [
        StoredPlay(p.played_at, p.track, values[p.played_at]) if p.played_at in values else p
        for p in who.plays
    ]


def run_random_histories(
    conn: psycopg.Connection, seed: int, users: int, size: int, check_each: bool = False
):
    """Feed random histories batch by batch; with check_each, compare the user's aggregates
    with a rebuild after every batch (errors a later batch would heal show up too)."""
    rnd = random.Random(seed)
    tracks = catalogue(30, seed)
    now = datetime.now(UTC)
    listeners, pending = [], []
    for i in range(users):
        zone = ZONES[i % len(ZONES)]
        key = add_user(conn, f"listener-{seed}-{i}", f"refresh-{seed}-{i}-0001")
        conn.execute("update user_tokens set time_zone = %s where id = %s", (zone, key))
        who = Listener(key, zone)
        listeners.append(who)
        history = sorted(random_history(rnd, tracks, now, size, zone), key=lambda x: x[0])
        # Arrival: windows in time order; about one play in seven turns up some windows
        # late (offline devices), among plays that are newer.
        windows: list[list[tuple]] = []
        i0 = 0
        while i0 < len(history):
            n = rnd.randint(1, 50)
            windows.append(list(history[i0 : i0 + n]))
            i0 += n
        for w in range(len(windows)):
            for play in list(windows[w]):
                if rnd.random() < 0.15 and w + 1 < len(windows):
                    windows[w].remove(play)
                    windows[min(len(windows) - 1, w + rnd.randint(1, 10))].append(play)
        batches = []
        for window in windows:
            if not window:
                continue
            kind = "export" if rnd.random() < 0.25 else "api"
            batch = [
                (t, tr, rnd.randint(0, 300_000) if kind == "export" else None) for t, tr in window
            ]
            batches.append((who, batch, kind))
            if rnd.random() < 0.1:  # the same window again: nothing new
                batches.append((who, batch, kind))
        pending.append(batches)
    # Interleave the users' runs, as hourly runs for several users would.
    per_user = {id(w): batches for w, batches in zip(listeners, pending, strict=True)}
    checkpoints = 0
    while any(per_user.values()):
        who = rnd.choice([w for w in listeners if per_user[id(w)]])
        _, batch, kind = per_user[id(who)].pop(0)
        feed(conn, who, batch, kind)
        if rnd.random() < 0.08:
            correct_ms(conn, who, rnd)
        if check_each:
            assert snapshot(conn, [who.key]) == rebuilt_snapshot(conn, [who.key])
        if rnd.random() < 0.03 and checkpoints < 3:  # mid-way: still equal to a rebuild
            checkpoints += 1
            keys = [w.key for w in listeners]
            assert snapshot(conn, keys) == rebuilt_snapshot(conn, keys)
    return listeners


@pytest.mark.parametrize("seed", [11, 23])
def test_incremental_aggregates_equal_a_rebuild_row_for_row(conn, seed):
    listeners = run_random_histories(conn, seed, users=len(ZONES), size=260, check_each=True)
    keys = [w.key for w in listeners]
    incremental = snapshot(conn, keys)
    assert all(incremental.values())  # every table has rows to compare
    assert incremental == rebuilt_snapshot(conn, keys)
    assert array_problems(conn) == []
    # every user's daily plays add up to their stored plays
    for who in listeners:
        total = conn.execute(
            "select coalesce(sum(plays), 0) from listening_days where user_id = %s", (who.key,)
        ).fetchone()[0]
        assert total == len(who.plays) > 0


def test_daily_figures_match_an_independent_python_model(conn):
    listeners = run_random_histories(conn, seed=5, users=len(ZONES), size=220)
    for who in listeners:
        expected = model_days(who.plays, who.zone)
        rows = conn.execute(
            """select day, plays, listening_ms, estimated_ms, distinct_tracks, distinct_artists,
                      first_played_at, last_played_at, hour_plays, hour_ms
                 from listening_days where user_id = %s order by day""",
            (who.key,),
        ).fetchall()
        assert [r[0] for r in rows] == sorted(expected), who.zone
        for day, plays, ms, est, tracks, artists, first, last, hp, hm in rows:
            m = expected[day]
            assert (plays, ms, est) == (m["plays"], m["ms"], m["est"]), (who.zone, day)
            assert (tracks, artists) == (len(m["tracks"]), len(m["artists"])), (who.zone, day)
            assert (first, last) == (m["first"], m["last"])
            assert (hp, hm) == (m["hour_plays"], m["hour_ms"]), (who.zone, day)
        ids = {
            ("track", u): i for u, i in conn.execute("select uri, id from tracks").fetchall()
        } | {("artist", u): i for u, i in conn.execute("select uri, id from artists").fetchall()}
        ids |= {("album", u): i for u, i in conn.execute("select uri, id from albums").fetchall()}
        kinds = {1: "track", 2: "artist", 3: "album"}
        stored = {
            (day, kinds[k], e): (p, ms)
            for k, day, e, p, ms in conn.execute(
                "select d.kind, d.day, x.e, x.p, x.m from listening_day_entities d, "
                "unnest(d.entity_ids, d.plays, d.listening_ms) x(e, p, m) where d.user_id = %s",
                (who.key,),
            )
        }
        modelled = {
            (day, key[0], ids[key]): tuple(v)
            for day, m in expected.items()
            for key, v in m["entities"].items()
        }
        assert stored == modelled, who.zone


def test_views_equal_brute_force_queries_over_the_history(conn):
    listeners = run_random_histories(conn, seed=9, users=len(ZONES), size=200)
    kinds = {"top_tracks": ("track", "track_id"), "top_artists": ("artist", "artist_id"),
             "top_albums": ("album", "album_id")}  # fmt: skip
    with conn.transaction():  # one now() for the views and the brute force
        for who in listeners:
            user_id = conn.execute(
                "select user_id from user_tokens where id = %s", (who.key,)
            ).fetchone()[0]
            periods = conn.execute(
                "select period, first_day, last_day from listening_periods(%s, %s)",
                (who.key, who.zone),
            ).fetchall()
            names = [p for p, _, _ in periods]
            assert names[:5] == ["7d", "4w", "6m", "12m", "all"] and "2025" in names
            for period, first, last in periods:
                for view, (kind, id_col) in kinds.items():
                    got = conn.execute(
                        f"select rank, {id_col}, plays, listening_ms from {view} "
                        "where spotify_user_id = %s and period = %s order by rank",
                        (user_id, period),
                    ).fetchall()
                    assert got == brute_top(conn, who.key, kind, first, last, 50), (
                        who.zone, period, view)  # fmt: skip
                totals = conn.execute(
                    "select plays, listening_ms, estimated_ms, days_listened, distinct_tracks, "
                    "distinct_artists, distinct_albums, first_played_at, last_played_at "
                    "from listening_period_totals where spotify_user_id = %s and period = %s",
                    (user_id, period),
                ).fetchone()
                assert totals == brute_totals(conn, who.key, first, last), (who.zone, period)
            heat = conn.execute(
                "select weekday, hour, plays, listening_ms from listening_heatmap "
                "where spotify_user_id = %s order by 1, 2",
                (user_id,),
            ).fetchall()
            assert heat == brute_heatmap(conn, who.key)
            today = datetime.now(UTC).astimezone(zoneinfo.ZoneInfo(who.zone)).date()
            days = {p.played_at.astimezone(zoneinfo.ZoneInfo(who.zone)).date() for p in who.plays}
            current, longest = conn.execute(
                "select current_days, longest_days from listening_streaks "
                "where spotify_user_id = %s",
                (user_id,),
            ).fetchone()
            assert (current, longest) == streaks(days, today)


def test_any_day_range_equals_brute_force(conn):
    """listening_top over random ranges: month and year edges, single days, all time."""
    listeners = run_random_histories(conn, seed=31, users=3, size=250)
    rnd = random.Random(31)
    for who in listeners:
        ranges = [(date(2024, 1, 1), date(2027, 12, 31)), (date(2026, 1, 1), date(2026, 1, 31))]
        for _ in range(12):
            a = date(2024, 11, 1) + timedelta(days=rnd.randint(0, 760))
            ranges.append((a, a + timedelta(days=rnd.choice([0, 1, 6, 27, 40, 200, 400]))))
        for first, last in ranges:
            for code, kind in ((1, "track"), (2, "artist"), (3, "album")):
                got = conn.execute(
                    "select rank, entity_id, plays, listening_ms "
                    "from listening_top(%s, %s::smallint, %s, %s, 15)",
                    (who.key, code, first, last),
                ).fetchall()
                assert got == brute_top(conn, who.key, kind, first, last, 15), (first, last, kind)
                count = conn.execute(
                    "select listening_entity_count(%s, %s::smallint, %s, %s)",
                    (who.key, code, first, last),
                ).fetchone()[0]
                assert count == len(brute_top(conn, who.key, kind, first, last, 10_000))
