"""Entity kinds have one home, sync.analytics.listening.Kind: the SQL that writes or reads a
kind itself (sql/repeatable/30, 40, 50) must store and return what the enum names, and
Python passes kinds to SQL as parameters, never as numbers of its own."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sync.analytics.listening import Kind
from sync.store.rows import AlbumRow, ArtistRow, Play, TrackRow
from tests.conftest import add_user
from tests.support.store import store_plays

SYNC = Path(__file__).resolve().parents[2] / "sync"
NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
A1 = ArtistRow("spotify:artist:k1", "k1", "Artist One")
A2 = ArtistRow("spotify:artist:k2", "k2", "Artist Two")
ALBUM = AlbumRow("spotify:album:k", "k", "The Album", "album", "2020", None)


def _track(n: int, *artists: ArtistRow) -> TrackRow:
    return TrackRow(f"spotify:track:k{n}", f"k{n}", f"Song {n}", 200_000, False, False,
                    None, n, 1, ALBUM, artists)  # fmt: skip


def _stored(conn) -> tuple[int, dict[Kind, set[int]]]:
    """Three tracks, two artists, one album, synced; the ids each kind must hold."""
    key = add_user(conn)
    tracks = [_track(1, A1, A2), _track(2, A1), _track(3, A2)]
    store_plays(conn, key, [Play(NOW + timedelta(minutes=4 * i), t) for i, t in enumerate(tracks)])
    ids = {
        Kind.TRACK: {i for (i,) in conn.execute("select id from tracks")},
        Kind.ARTIST: {i for (i,) in conn.execute("select id from artists")},
        Kind.ALBUM: {i for (i,) in conn.execute("select id from albums")},
    }
    assert [len(v) for v in ids.values()] == [3, 2, 1]
    return key, ids


def _by_kind(rows) -> dict[Kind, set[int]]:
    out: dict[Kind, set[int]] = {}
    for kind, entity in rows:
        out.setdefault(Kind(kind), set()).add(entity)
    return out


def test_the_analytics_writes_store_each_kind_as_the_enum_names_it(conn):
    key, ids = _stored(conn)
    totals = "select kind, entity_id from listening_entity_totals where user_id = %s"
    days = """select d.kind, x from listening_day_entities d, unnest(d.entity_ids) x
               where d.user_id = %s"""
    assert _by_kind(conn.execute(totals, (key,))) == ids  # incremental (30: refresh)
    assert _by_kind(conn.execute(days, (key,))) == ids
    with conn.transaction():
        conn.execute("select analytics_rebuild(%s)", (key,))
    assert _by_kind(conn.execute(totals, (key,))) == ids  # full rebuild (31_analytics_rebuild.sql)
    assert _by_kind(conn.execute(days, (key,))) == ids


def test_the_analytics_reads_and_views_mean_the_enums_kinds(conn):
    key, ids = _stored(conn)
    day = conn.execute("select max(day) from listening_days where user_id = %s", (key,))
    day = day.fetchone()[0]
    counts = conn.execute(
        "select distinct_tracks, distinct_artists, distinct_albums "
        "from listening_summary(%s, %s, %s)",
        (key, day - timedelta(days=1), day),
    ).fetchone()
    assert counts == (len(ids[Kind.TRACK]), len(ids[Kind.ARTIST]), len(ids[Kind.ALBUM]))
    for kind in Kind:
        top = conn.execute(
            "select entity_id from listening_top(%s, %s::smallint, %s, %s, 10)",
            (key, kind, day - timedelta(days=1), day),
        )
        assert {e for (e,) in top} == ids[kind], kind
    views = {
        Kind.TRACK: "select track_id from top_tracks where period = 'all'",
        Kind.ARTIST: "select artist_id from top_artists where period = 'all'",
        Kind.ALBUM: "select album_id from top_albums where period = 'all'",
    }
    for kind, query in views.items():
        assert {e for (e,) in conn.execute(query)} == ids[kind], kind
    labels = conn.execute("select distinct kind, entity_id from listening_entities_by_day")
    assert {(label, e) for label, e in labels} == {
        (kind.name.lower(), e) for kind, entities in ids.items() for e in entities
    }


def test_python_passes_kinds_as_parameters():
    """A number in the SQL text (`kind = 2`, `2::smallint`) would be a second home."""
    number = re.compile(r"\bkind\s*=\s*\d|\b\d::smallint")
    found = [
        f"{path.relative_to(SYNC)}:{n}"
        for path in SYNC.rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if number.search(line)
    ]
    assert found == []
