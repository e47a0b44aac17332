"""SQL that turns an export file's names into catalogue rows, set-based (one statement a step)."""

from __future__ import annotations

import logging

from sync.history_import.parse import (
    PLACEHOLDER_ALBUM,
    PLACEHOLDER_ARTIST,
    PLACEHOLDER_SHOW,
)

log = logging.getLogger(__name__)


REFS_DDL = """
create temp table if not exists import_refs (
    ref text, kind smallint, track text, artist text, album text
) on commit drop;
create temp table if not exists import_found (ref text, track_id integer) on commit drop;
create temp table if not exists import_new (
    ref text, kind smallint, track text, artist text, album text
) on commit drop;
create temp table if not exists import_artists (name text, artist_id integer) on commit drop;
"""

# The same-song rule (SQL function song_key, sql/repeatable/10_history.sql): how
# account-data rows find an existing track.
TRACK_KEY = "song_key({t}.name, {a}.name)"
REF_KEY = "song_key({s}.track, {s}.artist)"


def album_uri(r: str) -> str:
    return (
        f"case when {r}.kind in (2, 3) then '{PLACEHOLDER_SHOW}' || left({r}.album, 300) "
        f"else '{PLACEHOLDER_ALBUM}' || left(coalesce({r}.artist, ''), 300) || ':' "
        f"|| left({r}.album, 300) end"
    )


# From the refs of a file the history does not know yet to track ids, set-based:
# (step name, statement). Existing tracks by URI, then by name and artist (real Spotify
# tracks first); the rest are created with their album and primary artist, reusing an
# artist of the same name (a real one first).
RESOLVE_STATEMENTS = [
    (
        "tracks: by uri",  # lateral: an index probe per ref, never a scan of all tracks
        """insert into import_found (ref, track_id)
           select r.ref, t.id from import_refs r
             cross join lateral (select id from tracks where uri = r.ref) t""",
    ),
    (
        "tracks: by name",
        f"""insert into import_found (ref, track_id)
            select r.ref, m.id
              from import_refs r
              join (select distinct on (k) k, id
                      from (select {TRACK_KEY.format(t="t", a="a")} as k, t.id, t.uri
                              from tracks t
                              left join track_artists ta on ta.track_id = t.id and ta.position = 0
                              left join artists a on a.id = ta.artist_id) x
                     where k in (select {REF_KEY.format(s="i")} from import_refs i
                                  where i.kind in (1, 3))
                     order by k, (uri like 'spotify:track:%%') desc, id) m
                on m.k = {REF_KEY.format(s="r")}
             where r.kind in (1, 3)
               and not exists (select 1 from import_found f where f.ref = r.ref)""",
    ),
    (
        "tracks: new",
        """insert into import_new (ref, kind, track, artist, album)
           select ref, kind, track, artist, album from import_refs r
            where not exists (select 1 from import_found f where f.ref = r.ref)""",
    ),
    (
        "tracks: artists",
        f"""insert into artists (uri, name)
            select distinct '{PLACEHOLDER_ARTIST}' || left(n.artist, 300), n.artist
              from import_new n
             where n.kind in (0, 1) and n.artist is not null
               and not exists (select 1 from artists a where a.name = n.artist)
             order by 1
                on conflict (uri) do nothing;
            insert into import_artists (name, artist_id)
            select distinct on (name) name, id from artists
             where name in (select artist from import_new where kind in (0, 1))
             order by name, (uri like 'spotify:artist:%%') desc, id""",
    ),
    (
        "tracks: albums",
        f"""insert into albums (uri, name)
            select distinct {album_uri("n")}, n.album from import_new n
             where n.album is not null order by 1
                on conflict (uri) do nothing""",
    ),
]
# New tracks and their primary artist; the created rows come back. {conflict} is
# "on conflict do nothing" except in bulk mode, where the import holds these tables
# exclusively and every ref is known to be new (an upsert costs half as much again).
CREATE_TRACKS = f"""
    with created as (
        insert into tracks (uri, spotify_id, name, album_id, is_local)
        select n.ref,
               case when n.ref ~ '^spotify:(track|episode):[^:]+$'
                    then split_part(n.ref, ':', 3) end,
               coalesce(n.track, n.ref), al.id, n.ref like 'spotify:local:%'
          from import_new n
          left join lateral (select id from albums where uri = {album_uri("n")}) al
            on n.album is not null
         order by n.ref
        {{conflict}}
        returning id, uri),
    linked as (
        insert into track_artists (track_id, position, artist_id)
        select c.id, 0, a.artist_id
          from created c
          join import_new n on n.ref = c.uri and n.kind in (0, 1)
          join import_artists a on a.name = n.artist
         order by 1
        {{conflict}})
    select uri, id from created"""
