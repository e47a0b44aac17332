"""The catalogue write of `sync run` after an import (issue 8 point 5: whatever the import
stored, the sync never fails on it): placeholders adopted or merged, concurrent users
without deadlocks, real artists replacing the imported credit, one same-song rule."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest
from psycopg.types.json import Jsonb

from sync.job.transform import parse_items
from sync.store import aggregates
from sync.store import plays as plays_store
from sync.store.sources import song_key
from tests.conftest import add_user
from tests.history_import.test_import import do_import
from tests.support.analytics import rebuilt_snapshot, snapshot
from tests.support.export_fakes import extended, write
from tests.support.store import store_plays, upsert_tracks

T0 = datetime(2024, 5, 6, 18, 0, 0, tzinfo=UTC)
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
ALL = (date(2000, 1, 1), date(2100, 1, 1))


def api_track(n: int, album: str, artists: list[str], *, album_id: str | None = None) -> dict:
    """A Web API track `n` (same URI as export track `n`) on `album` by `artists`."""
    album_id = album_id or "alb" + album.replace(" ", "").lower()
    return {
        "type": "track", "id": f"trk{n:019d}", "uri": f"spotify:track:trk{n:019d}",
        "name": f"Song {n}", "duration_ms": 200_000, "explicit": False, "is_local": False,
        "track_number": 1, "disc_number": 1, "external_ids": {"isrc": f"ISRC{n:08d}"},
        "album": {"id": album_id, "uri": f"spotify:album:{album_id}", "name": album,
                  "album_type": "album", "release_date": "2020", "images": []},
        "artists": [{"id": "art" + a.replace(" ", "").lower(),
                     "uri": "spotify:artist:art" + a.replace(" ", "").lower(), "name": a}
                    for a in artists],
    }  # fmt: skip


def api_item(at: datetime, track: dict) -> dict:
    return {"track": track, "played_at": at.strftime("%Y-%m-%dT%H:%M:%S.000Z"), "context": None}


def store(conn: psycopg.Connection, key: int, items: list[dict]) -> list[datetime]:
    """What `sync run` does with a user's fetched plays, in one transaction."""
    plays, _ = parse_items(items)
    with conn.transaction():
        new = store_plays(conn, key, plays)
        aggregates.refresh_days(conn, key, new)
    return new


def sync_plays(conn, key: int, items: list[dict]) -> list[datetime]:
    return store(conn, key, items)


def new_user(conn, name: str) -> int:
    key = add_user(conn, name, f"refresh-{name}-0001")
    conn.execute("update user_tokens set time_zone = 'UTC' where id = %s", (key,))
    return key


def placeholders(conn) -> list[str]:
    return [r[0] for r in conn.execute(
        "select uri from artists where uri like 'spotify:export%' union all "
        "select uri from albums where uri like 'spotify:export%' union all "
        "select uri from tracks where uri like 'spotify:export%' order by 1")]  # fmt: skip


def album_stats(conn, key: int) -> tuple[int, list[tuple]]:
    """(distinct_albums, top albums as (album uri, plays)) over all time."""
    distinct = conn.execute("select distinct_albums from listening_summary(%s, %s, %s)",
                            (key, *ALL)).fetchone()[0]  # fmt: skip
    top = conn.execute(
        "select al.uri, t.plays from listening_top(%s, 3::smallint, %s, %s, 10) t "
        "join albums al on al.id = t.entity_id order by t.rank",
        (key, *ALL),
    ).fetchall()
    return distinct, top


# -- a) concurrent first syncs after an import ----------------------------------------
USERS = 6
ROUNDS = 8
SONGS = 24  # per round: 4 artists with an album each, 6 songs on each album


def _round_songs(r: int) -> list[tuple[int, str, str, str]]:
    """(track number, artist, featured artist, album) of round r's songs: names new in
    every round; the featured artist is another song's first artist."""
    return [(1000 * r + s, f"Artist {r}-{s % 4}", f"Artist {r}-{(s + 1) % 4}",
             f"Album {r}-{s % 4}") for s in range(SONGS)]  # fmt: skip


def test_concurrent_first_syncs_after_an_import_neither_deadlock_nor_fail(db_url, conn, tmp_path):
    """Every user imported the same songs (placeholder artists, albums and tracks), then
    all users' first syncs run at once, each with the songs in another order."""
    keys = [new_user(conn, f"user{u}") for u in range(USERS)]
    for r in range(ROUNDS):
        songs = _round_songs(r)
        for u, key in enumerate(keys):
            path = write(tmp_path / f"r{r}u{u}" / "Streaming_History_Audio_2024_0.json", [
                extended(T0 + r * DAY + timedelta(minutes=4 * i), n, artist=a, album=al)
                for i, (n, a, _, al) in enumerate(songs)])  # fmt: skip
            do_import(db_url, key, path)
        assert len(placeholders(conn)) == SONGS // 6 * 2  # the artists and the albums
        barrier = threading.Barrier(USERS, timeout=30)
        errors: list[BaseException] = []

        def sync(u: int, key: int, songs=songs, r=r, barrier=barrier, errors=errors) -> None:
            # every user another part of the songs, in another order
            order = [song for i, song in enumerate(songs) if (i + u) % 3]
            order = order[u:] + order[:u]
            if u % 2:
                order.reverse()
            items = [
                api_item(T0 + (r + 0.5) * DAY + timedelta(minutes=4 * i), api_track(n, al, [a, f]))
                for i, (n, a, f, al) in enumerate(order)
            ]
            try:
                with psycopg.connect(db_url) as c:
                    barrier.wait()
                    store(c, key, items)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=sync, args=(u, k)) for u, k in enumerate(keys)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in threads), f"round {r}: a sync hangs"
        assert errors == [], f"round {r}: {errors}"
        assert placeholders(conn) == []
        store(
            conn,
            keys[0],
            [
                api_item(T0 + (r + 0.7) * DAY + timedelta(minutes=4 * i), api_track(n, al, [a, f]))
                for i, (n, a, f, al) in enumerate(songs)
            ],
        )  # the rest of them
        # One row per real artist, album and track, each track on its album by its artist.
        rows = conn.execute(
            """select t.uri, al.uri, string_agg(a.uri, ',' order by ta.position)
                 from tracks t join albums al on al.id = t.album_id
                 join track_artists ta on ta.track_id = t.id join artists a on a.id = ta.artist_id
                where t.uri = any(%s) group by 1, 2 order by 1""",
            ([f"spotify:track:trk{n:019d}" for n, *_ in songs],),
        ).fetchall()
        assert rows == sorted(
            (f"spotify:track:trk{n:019d}", "spotify:album:alb" + al.replace(" ", "").lower(),
             ",".join("spotify:artist:art" + x.replace(" ", "").lower() for x in (a, f)))
            for n, a, f, al in songs)  # fmt: skip
        synced = SONGS * 2 // 3  # every user's share of a round's songs
        for u, key in enumerate(keys):
            assert conn.execute("select count(*) from listening_history where user_id = %s",
                                (key,)).fetchone()[0] == (r + 1) * (
                SONGS + synced + (SONGS if u == 0 else 0))  # fmt: skip
    assert snapshot(conn, keys) == rebuilt_snapshot(conn, keys)


# -- b) a compilation -------------------------------------------------------------------
def test_a_compilation_imported_under_two_artists_becomes_one_album(db_url, conn, tmp_path):
    """Two imported songs of one album with different first artists: two placeholder albums
    that are the same real album. Synced in one run, the user's sync used to fail."""
    key = new_user(conn, "alice")
    write(tmp_path / "Streaming_History_Audio_2024_0.json", [
        extended(T0, 1, artist="Artist A", album="Hits"),
        extended(T0 + timedelta(minutes=4), 2, artist="Artist B", album="Hits"),
    ])  # fmt: skip
    do_import(db_url, key, tmp_path)
    assert len(placeholders(conn)) == 4
    day = T0 + DAY
    sync_plays(conn, key, [api_item(day, api_track(1, "Hits", ["Artist A"])),
                           api_item(day + timedelta(minutes=4),
                                    api_track(2, "Hits", ["Artist B"]))])  # fmt: skip
    assert placeholders(conn) == []
    albums = conn.execute(
        "select al.uri, count(t.id) from albums al left join tracks t on t.album_id = al.id "
        "group by 1"
    ).fetchall()
    assert albums == [("spotify:album:albhits", 2)]
    assert album_stats(conn, key) == (1, [("spotify:album:albhits", 4)])
    assert snapshot(conn, [key]) == rebuilt_snapshot(conn, [key])


# -- c) the real album and artist exist already -------------------------------------
def test_a_placeholder_whose_real_album_exists_merges_into_it(db_url, conn, tmp_path):
    key = new_user(conn, "alice")
    # The sync stores song 1 of the album first ...
    sync_plays(conn, key, [api_item(T0 + 10 * DAY, api_track(1, "Hits", ["Artist A"]))])
    # ... then an import brings an older play of song 2 of the same album, by an artist
    # name the catalogue does not know yet (no artist of that name: a placeholder)...
    write(tmp_path / "Streaming_History_Audio_2024_0.json",
          [extended(T0, 2, artist="Artist B", album="Hits")])  # fmt: skip
    do_import(db_url, key, tmp_path)
    # ... whose artist the sync has met meanwhile, on another song (adopting it).
    sync_plays(conn, key, [api_item(T0 + 11 * DAY, api_track(3, "Other", ["Artist B"]))])
    assert placeholders(conn) == ["spotify:export-album:Artist B:Hits"]
    sync_plays(conn, key, [api_item(T0 + 12 * DAY, api_track(2, "Hits", ["Artist B"]))])
    assert placeholders(conn) == []
    assert conn.execute("select count(*) from albums where name = 'Hits'").fetchone()[0] == 1
    assert conn.execute("select count(*) from artists where name = 'Artist B'").fetchone()[0] == 1
    assert album_stats(conn, key) == (2, [("spotify:album:albhits", 3),
                                          ("spotify:album:albother", 1)])  # fmt: skip
    assert snapshot(conn, [key]) == rebuilt_snapshot(conn, [key])


# -- d) the real artists replace the imported credit ----------------------------------
def test_the_real_artists_replace_the_album_artist_the_import_credited(db_url, conn, tmp_path):
    """The export names the album's artist; the track's own artists come from the API."""
    key = new_user(conn, "alice")
    write(tmp_path / "Streaming_History_Audio_2024_0.json",
          [extended(T0, 1, artist="Various Artists", album="Hits")])  # fmt: skip
    do_import(db_url, key, tmp_path)
    sync_plays(conn, key, [api_item(T0 + DAY, api_track(1, "Hits", ["Singer", "Guest"]))])
    credits = conn.execute(
        """select ta.position, a.uri from track_artists ta join artists a on a.id = ta.artist_id
            order by 1"""
    ).fetchall()
    assert credits == [(0, "spotify:artist:artsinger"), (1, "spotify:artist:artguest")]
    # The placeholder artist credited nothing else: it is gone with its analytics.
    assert placeholders(conn) == []
    assert snapshot(conn, [key]) == rebuilt_snapshot(conn, [key])
    top_artists = conn.execute(
        "select a.uri, t.plays from listening_top(%s, 2::smallint, %s, %s, 10) t "
        "join artists a on a.id = t.entity_id order by t.rank, 1", (key, *ALL)
    ).fetchall()  # fmt: skip
    assert top_artists == [("spotify:artist:artguest", 2), ("spotify:artist:artsinger", 2)]


# -- e) one same-song rule -------------------------------------------------------------
TRICKY = [
    ("Hello", "ADELE"),
    ("Déjà Vu", "BEYONCÉ"),
    ("STRASSE", "Straße"),  # German sharp s: no single-letter upper case
    ("İstanbul", "DİLBER"),  # Turkish dotted capital I
    ("ΟΔΟΣ", "ΣΟΦΟΣ Σ"),  # Greek capital sigma at the end of a word
    ("ǅ Dž", "ǈ"),  # title-case digraphs
    ("Ꭰ Cherokee", "ﬀ ligature"),
    ("🔥 Fire 🔥", "👩‍👩‍👧"),
    ("", ""),
    (None, "Artist"),
    ("Song", None),
    (None, None),
]


@pytest.mark.parametrize(("track", "artist"), TRICKY)
def test_python_and_sql_compute_the_same_song_key(conn, track, artist):
    sql_key = conn.execute("select song_key(%s, %s)", (track, artist)).fetchone()[0]
    assert sql_key == song_key(track, artist)


def test_every_sql_side_uses_the_song_key_function(conn):
    for name in ("history_api_plays_to_insert", "catalogue_import_tracks"):
        text = conn.execute("select prosrc from pg_proc where proname = %s", (name,)).fetchone()[0]
        assert "song_key(" in text and "lower(" not in text, text


# -- f) one round trip -----------------------------------------------------------------
class Counting(psycopg.Connection):
    statements = 0

    def execute(self, *args, **kwargs):
        type(self).statements += 1
        return super().execute(*args, **kwargs)


def test_the_catalogue_write_is_one_round_trip_and_reports_completed_tracks(db_url, tmp_path):
    with psycopg.connect(db_url, autocommit=True) as conn:
        key = new_user(conn, "alice")
        write(tmp_path / "Streaming_History_Audio_2024_0.json",
              [extended(T0, 1, artist="Artist A", album="Hits")])  # fmt: skip
        do_import(db_url, key, tmp_path)
    tracks = [api_track(n, "Hits", ["Artist A", "Artist C"]) for n in (1, 2)]
    plays, _ = parse_items([api_item(T0 + DAY + timedelta(minutes=4 * i), t)
                            for i, t in enumerate(tracks)])  # fmt: skip
    page = Jsonb([plays_store.track_json(p.track) for p in plays])
    with Counting.connect(db_url) as conn:
        # What the function returns: every track's id, and whether a stored one changed
        # (song 1 gains its length, album and second artist; song 2 is new).
        with conn.transaction() as tx:
            out = conn.execute("select uri, track_id, completed from catalogue_upsert(%s) "
                               "order by 1", (page,)).fetchall()  # fmt: skip
            assert [(u, c) for u, _, c in out] == [(tracks[0]["uri"], True),
                                                   (tracks[1]["uri"], False)]  # fmt: skip
            raise psycopg.Rollback(tx)
        Counting.statements = 0
        ids = upsert_tracks(conn, [p.track for p in plays])
        assert Counting.statements == 1
        assert ids == dict(conn.execute("select uri, id from tracks").fetchall())
        again = conn.execute("select completed from catalogue_upsert(%s)", (page,)).fetchall()
        assert again == [(False,), (False,)]


def _rows_read_by_scans(conn: psycopg.Connection) -> dict[str, int]:
    """Rows sequential scans have read so far, per table the sync write reads."""
    conn.execute("select pg_stat_force_next_flush()")
    conn.execute("select pg_stat_clear_snapshot()")
    return dict(
        conn.execute(
            """select relname, seq_tup_read from pg_stat_user_tables
                where relname in ('tracks', 'albums', 'artists', 'track_artists',
                                  'listening_history')"""
        ).fetchall()
    )


def _bulk_catalogue(conn: psycopg.Connection, analyze: bool) -> None:
    """20,000 tracks on 10,000 albums by 10,000 artists, and 30,000 plays of another user."""
    other = add_user(conn, "bulk", "refresh-bulk-0001")
    conn.execute(
        """insert into artists (uri, name)
           select 'spotify:artist:bulk' || g, 'Bulk artist ' || g from generate_series(1, 10000) g;
           insert into albums (uri, name)
           select 'spotify:album:bulk' || g, 'Bulk album ' || g from generate_series(1, 10000) g;
           insert into tracks (uri, name, album_id, duration_ms)
           select 'spotify:track:bulk' || g, 'Bulk ' || g, a.id, 200000
             from generate_series(1, 20000) g
             join albums a on a.uri = 'spotify:album:bulk' || (1 + g % 10000);
           insert into track_artists (track_id, position, artist_id)
           select t.id, 0, a.id from tracks t
             join artists a on a.uri = 'spotify:artist:bulk' || (1 + t.id % 10000)
            where t.uri like 'spotify:track:bulk%'"""
    )
    conn.execute(
        """insert into listening_history (user_id, played_at, track_id, ms_played, source)
           select %s, %s - g * interval '3 minutes', t.id, 150000, 1
             from generate_series(1, 30000) g
             join tracks t on t.uri = 'spotify:track:bulk' || (1 + g %% 20000)""",
        (other, T0),
    )
    if analyze:
        conn.execute("analyze")


def _hourly_writes(conn: psycopg.Connection, key: int, hours: range) -> None:
    """What `sync run` writes for the user each hour: 10 plays, 5 of them of new tracks."""
    for hour in hours:
        tracks = [api_track(hour * 5 + i, f"Album {i % 4}", [f"Artist {i % 3}"]) for i in range(10)]
        items = [api_item(T0 + hour * HOUR + i * MINUTE * 3, t) for i, t in enumerate(tracks)]
        store(conn, key, items)


def test_the_sync_write_finds_stored_rows_by_key_not_by_reading_whole_tables(conn):
    """Issue 9: each user's write read every stored track twice (the planner guessed 100
    rows for the page's JSON and chose a hash join): 62 ms a user at 1000 users, and
    growing with the catalogue. Eight hourly writes, past the plan cache's first five
    custom plans, must read no whole table of a catalogue of 20,000 tracks."""
    key = add_user(conn)
    _bulk_catalogue(conn, analyze=True)
    before = _rows_read_by_scans(conn)
    _hourly_writes(conn, key, range(8))
    after = _rows_read_by_scans(conn)
    read = {table: after[table] - before[table] for table in after}
    assert plays_store.count_plays(conn, key) == 80
    assert all(n < 2000 for n in read.values()), read


def test_plans_made_while_the_tables_were_empty_still_read_by_key_later(conn):
    """Issue 9: a connection caches its plans. One made on a first sync into empty tables
    kept reading whole tables as they grew: 14 ms a user in the plays filter and 19 ms of
    Postgres CPU per user at 1000 users on one connection. Six writes while the tables
    are nearly empty, then the catalogue grows (not analysed yet, as in a run), then
    eight more writes on the same connection."""
    key = add_user(conn)
    _hourly_writes(conn, key, range(6))
    _bulk_catalogue(conn, analyze=False)
    before = _rows_read_by_scans(conn)
    _hourly_writes(conn, key, range(6, 14))
    after = _rows_read_by_scans(conn)
    read = {table: after[table] - before[table] for table in after}
    assert plays_store.count_plays(conn, key) == 140
    assert all(n < 2000 for n in read.values()), read


def test_a_write_of_known_tracks_draws_no_ids_and_inserts_nothing(conn):
    """Issue 9: every hourly write tried to insert every track, album and artist of its
    plays and let `on conflict` drop the known ones; each attempt still drew an id from
    the table's sequence. Known rows are now left out before the insert."""
    key = add_user(conn)
    _hourly_writes(conn, key, range(1))
    sequences = "select " + ", ".join(
        f"(select last_value from {table}_id_seq)" for table in ("tracks", "albums", "artists")
    )
    before = conn.execute(sequences).fetchone()
    tracks = [api_track(i, f"Album {i % 4}", [f"Artist {i % 3}"]) for i in range(10)]
    later = T0 + 5 * HOUR  # the same ten songs again, an hour later
    store(conn, key, [api_item(later + i * MINUTE * 3, t) for i, t in enumerate(tracks)])
    assert plays_store.count_plays(conn, key) == 20
    assert conn.execute(sequences).fetchone() == before
