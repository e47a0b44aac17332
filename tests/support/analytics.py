"""Helpers for the analytics tests and benchmark: table snapshots, a catalogue of tracks,
an independent Python model of the daily figures, and brute-force SQL over the history."""

from __future__ import annotations

import zoneinfo
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import psycopg

from sync.store.rows import AlbumRow, ArtistRow, TrackRow

# Every aggregate table as a normalised relation: day arrays unnested, rows ordered.
SNAPSHOT_QUERIES = {
    "listening_days": "select * from listening_days where user_id = any(%s) order by user_id, day",
    "listening_hour_weekday": "select * from listening_hour_weekday where user_id = any(%s) "
    "order by user_id, weekday, hour",
    "listening_day_entities": "select d.user_id, d.kind, d.day, x.entity_id, x.plays, x.ms "
    "from listening_day_entities d, unnest(d.entity_ids, d.plays, d.listening_ms) "
    "as x(entity_id, plays, ms) where d.user_id = any(%s) order by 1, 2, 3, 4",
    "listening_entity_totals": "select * from listening_entity_totals where user_id = any(%s) "
    "order by user_id, kind, entity_id",
}


def snapshot(conn: psycopg.Connection, keys: Sequence[int]) -> dict[str, list[tuple]]:
    return {
        name: conn.execute(sql, (list(keys),)).fetchall() for name, sql in SNAPSHOT_QUERIES.items()
    }


def rebuilt_snapshot(conn: psycopg.Connection, keys: Sequence[int]) -> dict[str, list[tuple]]:
    """What a from-scratch rebuild gives, computed in a transaction that is rolled back."""
    with conn.transaction() as tx:
        for key in keys:
            conn.execute("select analytics_rebuild(%s)", (key,))
        after = snapshot(conn, keys)
        raise psycopg.Rollback(tx)
    return after


def array_problems(conn: psycopg.Connection) -> list[tuple]:
    """Day rows whose parallel arrays disagree in length, repeat an entity, or are empty."""
    return conn.execute(
        """select user_id, kind, day from listening_day_entities
            where cardinality(entity_ids) <> cardinality(plays)
               or cardinality(entity_ids) <> cardinality(listening_ms)
               or cardinality(entity_ids) = 0
               or (select count(distinct e) from unnest(entity_ids) e) <> cardinality(entity_ids)"""
    ).fetchall()


def catalogue(n_tracks: int = 30, seed: int = 7) -> list[TrackRow]:
    """Tracks with 0-3 artists (one credited twice), some without album or length."""
    import random

    rnd = random.Random(seed)
    artists = [ArtistRow(f"spotify:artist:a{i:03d}", f"a{i:03d}", f"Artist {i}") for i in range(12)]
    albums = [
        AlbumRow(f"spotify:album:b{i:03d}", f"b{i:03d}", f"Album {i}", "album", "2020", None)
        for i in range(8)
    ]
    tracks = []
    for i in range(n_tracks):
        credited = tuple(rnd.sample(artists, rnd.choice([1, 1, 1, 2, 2, 3])))
        if i == 3:
            credited = ()  # a track with no artist at all
        album = None if i % 9 == 4 else albums[i % len(albums)]
        duration = None if i % 11 == 5 else rnd.randint(90_000, 480_000)
        tracks.append(
            TrackRow(
                uri=f"spotify:track:t{i:03d}",
                spotify_id=f"t{i:03d}",
                name=f"Track {i}",
                duration_ms=duration,
                explicit=False,
                is_local=False,
                isrc=None,
                track_number=1,
                disc_number=1,
                album=album,
                artists=credited,
            )
        )
    return tracks


@dataclass(frozen=True)
class StoredPlay:
    played_at: datetime
    track: TrackRow
    ms_played: int | None


_MS = timedelta(milliseconds=1)


def model_days(plays: Sequence[StoredPlay], zone: str) -> dict[date, dict]:
    """The daily figures, computed in Python from the plays alone (independent of the SQL)."""
    tz = zoneinfo.ZoneInfo(zone)
    out: dict[date, dict] = {}
    previous: datetime | None = None
    for p in sorted(plays, key=lambda x: x.played_at):
        if p.ms_played is not None:
            ms, estimated = p.ms_played, False
        else:
            estimated = True
            if p.track.duration_ms is None:
                ms = 0
            elif previous is None:
                ms = p.track.duration_ms
            else:
                gap = (p.played_at - previous) // _MS
                ms = min(p.track.duration_ms, gap)
        previous = p.played_at
        local = p.played_at.astimezone(tz)
        day = out.setdefault(
            local.date(),
            {"plays": 0, "ms": 0, "est": 0, "tracks": set(), "artists": set(),
             "first": p.played_at, "last": p.played_at, "hour_plays": [0] * 24,
             "hour_ms": [0] * 24, "entities": defaultdict(lambda: [0, 0])},
        )  # fmt: skip
        day["plays"] += 1
        day["ms"] += ms
        day["est"] += ms if estimated else 0
        day["tracks"].add(p.track.uri)
        day["artists"].update(a.uri for a in p.track.artists)
        day["first"] = min(day["first"], p.played_at)
        day["last"] = max(day["last"], p.played_at)
        day["hour_plays"][local.hour] += 1
        day["hour_ms"][local.hour] += ms
        keys = [("track", p.track.uri)] + [("artist", a.uri) for a in set(p.track.artists)]
        if p.track.album is not None:
            keys.append(("album", p.track.album.uri))
        for key in keys:
            day["entities"][key][0] += 1
            day["entities"][key][1] += ms
    return out


# -- brute force over listening_history ----------------------------------------------
# Written without the analytics functions: local day with `at time zone`, the estimate
# spelled out, artists from track_artists.
_BRUTE_PLAYS = """
    with p as (
        select h.played_at, (h.played_at at time zone u.time_zone) as lt, h.track_id, t.album_id,
               h.ms_played is null as est,
               case when h.ms_played is not null then h.ms_played::numeric
                    when t.duration_ms is null then 0
                    when lag(h.played_at) over w is null then t.duration_ms
                    else least(t.duration_ms,
                               extract(epoch from h.played_at - lag(h.played_at) over w) * 1000)
               end as ms
          from listening_history h
          join user_tokens u on u.id = h.user_id
          join tracks t on t.id = h.track_id
         where h.user_id = %(key)s
        window w as (order by h.played_at)
    ), q as (select * from p where lt::date between %(first)s and %(last)s)
"""

_BRUTE_ENTITY = {
    "track": "select track_id as e, count(*) as n, sum(ms) as ms from q group by 1",
    "artist": "select ta.artist_id as e, count(*) as n, sum(q.ms) as ms from q "
    "join (select distinct track_id, artist_id from track_artists) ta "
    "on ta.track_id = q.track_id group by 1",
    "album": "select album_id as e, count(*) as n, sum(ms) as ms from q "
    "where album_id is not null group by 1",
}


def brute_top(
    conn: psycopg.Connection, key: int, kind: str, first: date, last: date, limit: int
) -> list[tuple[int, int, int, int]]:
    """(rank, entity id, plays, ms) straight from the history."""
    rows = conn.execute(
        _BRUTE_PLAYS + f"select e, n, ms from ({_BRUTE_ENTITY[kind]}) x "
        "order by n desc, ms desc, e limit %(limit)s",
        {"key": key, "first": first, "last": last, "limit": limit},
    ).fetchall()
    return [(i, e, int(n), int(ms)) for i, (e, n, ms) in enumerate(rows, 1)]


def brute_totals(conn: psycopg.Connection, key: int, first: date, last: date) -> tuple:
    row = conn.execute(
        _BRUTE_PLAYS
        + """select count(*), coalesce(sum(ms), 0), coalesce(sum(ms) filter (where est), 0),
                    count(distinct lt::date),
                    (select count(*) from ("""
        + _BRUTE_ENTITY["track"]
        + """) a),
                    (select count(*) from ("""
        + _BRUTE_ENTITY["artist"]
        + """) b),
                    (select count(*) from ("""
        + _BRUTE_ENTITY["album"]
        + """) c),
                    min(played_at), max(played_at)
               from q""",
        {"key": key, "first": first, "last": last},
    ).fetchone()
    n, ms, est, days, tracks, artists, albums, lo, hi = row
    return (n, int(ms), int(est), days, tracks, artists, albums, lo, hi)


def brute_heatmap(conn: psycopg.Connection, key: int) -> list[tuple[int, int, int, int]]:
    rows = conn.execute(
        _BRUTE_PLAYS
        + """select extract(isodow from lt)::int, extract(hour from lt)::int, count(*), sum(ms)
               from q group by 1, 2 order by 1, 2""",
        {"key": key, "first": date(1900, 1, 1), "last": date(2999, 1, 1)},
    ).fetchall()
    return [(w, h, n, int(ms)) for w, h, n, ms in rows]


def streaks(days: set[date], today: date) -> tuple[int, int]:
    """(current, longest) runs of consecutive days; current ends today or yesterday."""
    longest = 0
    for d in days:
        if d - timedelta(days=1) not in days:
            n = 1
            while d + timedelta(days=n) in days:
                n += 1
            longest = max(longest, n)
    current = 0
    start = today if today in days else today - timedelta(days=1)
    while start - timedelta(days=current) in days:
        current += 1
    return current, longest
