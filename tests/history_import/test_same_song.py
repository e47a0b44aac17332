"""One table of matching cases for the catalogue rules an import applies, run against both
sides: Python (the parser's refs, sync/store/catalogue.py placeholder, song_key, which
match.py compares) and SQL (catalogue_placeholder, song_key, catalogue_import_tracks).

Same song: a row with a track URI is the track of that URI, never another found by its
names; a row with names only is a stored track of the same lower-cased name and primary
artist (a real Spotify track before a placeholder), else a new placeholder track. Names in
placeholder URIs are cut to 300 characters (docs/import.md, "Tracks, albums and artists").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from sync.history_import.parse import (
    ACCOUNT,
    EXTENDED,
    KIND_NAMED_TRACK,
    KIND_TRACK,
    ParseOptions,
    parse_file,
)
from sync.store import imports as store
from sync.store.catalogue import NAME_IN_URI_MAX, placeholder
from sync.store.sources import song_key
from tests.support.export_fakes import account, dumps, extended, uri

T0 = datetime(2024, 5, 6, 18, 43, 21, tzinfo=UTC)
LONG = "L" * 310  # longer than NAME_IN_URI_MAX
REAL = "spotify:track:real0000000000000000001"
SEEDED = "the artist of the first stored track"


@dataclass(frozen=True)
class Case:
    name: str
    stored: tuple[tuple[str, str, str], ...]  # (uri, track name, primary artist name)
    entry: dict  # one export entry
    kind: str  # file kind
    want: str  # the uri of the track the entry resolves to
    want_artist: str | None = None  # uri of a new track's primary artist (SEEDED: the stored one)
    want_album: str | None = None  # uri of a new track's album
    same_key: bool | None = None  # whether Python's song_key pairs it with the found track


CASES = [
    Case("a URI row is the track of its URI", ((uri(1), "Other name", "Other artist"),),
         extended(T0, 1), EXTENDED, uri(1)),
    Case("a URI row never matches by names", ((REAL, "Song 1", "Artist 1"),),
         extended(T0, 1, name="Song 1", artist="Artist 1", album="Album 1"), EXTENDED, uri(1),
         SEEDED, "spotify:export-album:Artist 1:Album 1"),
    Case("names match without regard to case", ((REAL, "Hello", "Adele"),),
         account(T0, name="HELLO", artist="adele"), ACCOUNT, REAL, same_key=True),
    Case("case folding as Postgres does it", ((REAL, "STRASSE", "ΣΟΦΟΣ"),),
         account(T0, name="strasse", artist="σοφοσ"), ACCOUNT, REAL, same_key=True),
    Case("a real track before a placeholder of the same names",
         (("spotify:export:ADELE:HELLO", "HELLO", "ADELE"), (REAL, "hello", "adele")),
         account(T0, name="Hello", artist="Adele"), ACCOUNT, REAL, same_key=True),
    Case("another primary artist is another song", ((REAL, "Hello", "Lionel Richie"),),
         account(T0, name="Hello", artist="Adele"), ACCOUNT, "spotify:export:Adele:Hello",
         "spotify:export-artist:Adele"),
    Case("a placeholder made before is found again", (("spotify:export:A:B", "B", "A"),),
         account(T0, name="B", artist="A"), ACCOUNT, "spotify:export:A:B"),
    Case("long names are cut to 300 characters in placeholders", (),
         account(T0, name=LONG + "x", artist=LONG),
         ACCOUNT, f"spotify:export:{LONG[:300]}:{LONG[:300]}",
         f"spotify:export-artist:{LONG[:300]}"),
    Case("names that differ after 300 characters share a placeholder",
         ((f"spotify:export:A:{LONG[:300]}", LONG + "x", "A"),),
         account(T0, name=LONG + "y", artist="A"), ACCOUNT, f"spotify:export:A:{LONG[:300]}",
         same_key=False),
    Case("an extended row without URI is named like account data", (),
         extended(T0, 1, name="Local", artist="Me", album="Disc") | {"spotify_track_uri": None},
         EXTENDED, "spotify:export:Me:Local", "spotify:export-artist:Me",
         "spotify:export-album:Me:Disc"),
]  # fmt: skip


def _ref(case: Case) -> tuple:
    """The Python side: the ref the parser stages for the case's entry."""
    data = dumps([case.entry]).encode()
    name = "endsong_0.json" if case.kind == EXTENDED else "StreamingHistory_music_0.json"
    parsed = parse_file(name, data, case.kind, ParseOptions())
    assert len(parsed.refs) == 1
    return parsed.refs[0]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_python_and_sql_resolve_the_same_song(conn, case):
    ref, kind, track, artist, album = _ref(case)
    if kind == KIND_NAMED_TRACK:  # Python's placeholder is SQL's
        assert ref == placeholder("track", artist, track)
        sql = conn.execute("select catalogue_placeholder('track', %s, %s)", (artist, track))
        assert sql.fetchone()[0] == ref
    else:
        assert kind == KIND_TRACK
        assert ref == case.entry["spotify_track_uri"]
    with conn.transaction():
        ids = {}
        for s_uri, s_name, s_artist in case.stored:
            tid = conn.execute("insert into tracks (uri, name) values (%s, %s) returning id",
                               (s_uri, s_name)).fetchone()[0]  # fmt: skip
            aid = conn.execute("insert into artists (uri, name) values (%s, %s) returning id",
                               (f"spotify:artist:{tid}", s_artist)).fetchone()[0]  # fmt: skip
            conn.execute("insert into track_artists values (%s, 0, %s)", (tid, aid))
            ids[s_uri] = tid
        conn.execute("select catalogue_import_stage()")
        got = store.resolve_tracks(conn, [(ref, kind, track, artist, album)], bulk=False)
        row = conn.execute(
            """select t.uri, a.uri, al.uri from tracks t
                 left join track_artists ta on ta.track_id = t.id and ta.position = 0
                 left join artists a on a.id = ta.artist_id
                 left join albums al on al.id = t.album_id where t.id = %s""",
            (got[ref],),
        ).fetchone()
    assert row[0] == case.want
    if case.want in ids:  # an existing track
        assert got[ref] == ids[case.want]
        if case.same_key is not None:  # match.py pairs plays by Python's song_key
            names = next((n, a) for u, n, a in case.stored if u == case.want)
            assert (song_key(track, artist) == song_key(*names)) is case.same_key
    else:
        seeded = f"spotify:artist:{ids[case.stored[0][0]]}" if case.want_artist == SEEDED else None
        assert (row[1], row[2]) == (seeded or case.want_artist, case.want_album)


@pytest.mark.parametrize(
    ("kind", "artist", "name", "want"),
    [
        ("track", "Artist", "Song", "spotify:export:Artist:Song"),
        ("track", None, "Song", "spotify:export::Song"),
        ("artist", None, "Artist", "spotify:export-artist:Artist"),
        ("album", "Artist", "Album", "spotify:export-album:Artist:Album"),
        ("album", None, "Album", "spotify:export-album::Album"),
        ("track", "é" * 301, "ß" * 400, f"spotify:export:{'é' * 300}:{'ß' * 300}"),
        ("artist", None, "🔥" * 301, f"spotify:export-artist:{'🔥' * 300}"),
    ],
    ids=lambda value: value if value is None or len(value) < 30 else f"{value[:3]}...",
)
def test_placeholder_uris_are_the_same_in_python_and_sql(conn, kind, artist, name, want):
    assert NAME_IN_URI_MAX == 300
    assert placeholder(kind, artist, name) == want
    sql = conn.execute("select catalogue_placeholder(%s, %s, %s)", (kind, artist, name))
    assert sql.fetchone()[0] == want
