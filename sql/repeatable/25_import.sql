-- 25_import.sql: what `python -m sync import` writes besides the COPY of its plays: the
-- catalogue rows an export's names stand for (beside `sync run`'s catalogue_upsert in
-- 20_catalogue.sql), the stored plays an import fills or replaces, and the foreign keys a
-- bulk load suspends. Called from sync/store/imports.py; docs/import.md has the rules.
-- Repeatable: the current definitions, applied by `python -m sync migrate` whenever this
-- file's checksum differs from the one recorded in schema_files, after the numbered
-- migrations and the repeatable files before it (docs/schema.md). Safe to run any
-- number of times, and to paste into Supabase's SQL editor after the numbered files.
-- Edit functions here, not in the numbered migrations (those are append-only).

-- The staging tables of one import (temporary, gone at commit): the importer COPYs a
-- file's refs it does not know yet into import_refs, (ref, kind, track, artist, album)
-- with ref a track URI or a placeholder URI built from the names (kinds: 0 URI, 1 names
-- only; sync/history_import/staged.py); the others are work tables of
-- catalogue_import_tracks. (Podcast episodes and audiobook chapters are not tracks:
-- sync/store/spoken.py stores them apart.)
create or replace function catalogue_import_stage() returns void
language plpgsql as $$
begin
    create temp table if not exists import_refs (
        ref text, kind smallint, track text, artist text, album text
    ) on commit drop;
    create temp table if not exists import_found (ref text, track_id integer) on commit drop;
    create temp table if not exists import_new (
        ref text, kind smallint, track text, artist text, album text
    ) on commit drop;
    create temp table if not exists import_artists (name text, artist_id integer) on commit drop;
end $$;

-- Obsolete: the album of a staged episode (its show) or track, when imports still
-- stored episodes as tracks; a track's album is catalogue_placeholder('album', ...).
drop function if exists catalogue_import_album(smallint, text, text);

-- From the staged refs to track ids, set-based, one statement a step; returns (ref,
-- track_id) for every staged ref and empties the staging tables. Existing tracks by
-- URI, then by the same-song rule (song_key: name and primary artist; real Spotify
-- tracks first); the rest are created with their album and primary artist, reusing an
-- artist of the same name (a real one first). p_bulk: the import holds the catalogue
-- tables for itself and every staged ref is new, so the inserts need no
-- `on conflict` (which costs half as much again); otherwise a track a concurrent sync
-- created meanwhile is found by its URI.
create or replace function catalogue_import_tracks(p_bulk boolean)
returns table (ref text, track_id integer)
language plpgsql set jit = off as $$
declare
    conflict text := case when p_bulk then '' else 'on conflict do nothing' end;
begin
    -- lateral: an index probe per ref, never a scan of all tracks
    insert into import_found (ref, track_id)
    select r.ref, t.id from import_refs r
      cross join lateral (select id from tracks where uri = r.ref) t;

    insert into import_found (ref, track_id)
    select r.ref, m.id
      from import_refs r
      join (select distinct on (k) k, id
              from (select song_key(t.name, a.name) as k, t.id, t.uri
                      from tracks t
                      left join track_artists ta on ta.track_id = t.id and ta.position = 0
                      left join artists a on a.id = ta.artist_id) x
             where k in (select song_key(i.track, i.artist) from import_refs i
                          where i.kind = 1)
             order by k, (uri like 'spotify:track:%') desc, id) m
        on m.k = song_key(r.track, r.artist)
     where r.kind = 1
       and not exists (select 1 from import_found f where f.ref = r.ref);

    insert into import_new (ref, kind, track, artist, album)
    select r.ref, r.kind, r.track, r.artist, r.album from import_refs r
     where not exists (select 1 from import_found f where f.ref = r.ref);

    insert into artists (uri, name)
    select distinct catalogue_placeholder('artist', null, n.artist), n.artist
      from import_new n
     where n.artist is not null
       and not exists (select 1 from artists a where a.name = n.artist)
     order by 1
        on conflict (uri) do nothing;
    insert into import_artists (name, artist_id)
    select distinct on (a.name) a.name, a.id from artists a
     where a.name in (select n.artist from import_new n)
     order by a.name, (a.uri like 'spotify:artist:%') desc, a.id;

    insert into albums (uri, name)
    select distinct catalogue_placeholder('album', n.artist, n.album), n.album
      from import_new n
     where n.album is not null order by 1
        on conflict (uri) do nothing;

    -- New tracks and their primary artist.
    execute format($q$
        with created as (
            insert into tracks (uri, spotify_id, name, album_id, is_local)
            select n.ref,
                   case when n.ref ~ '^spotify:track:[^:]+$'
                        then split_part(n.ref, ':', 3) end,
                   coalesce(n.track, n.ref), al.id, n.ref like 'spotify:local:%%'
              from import_new n
              left join lateral (select id from albums
                                  where uri = catalogue_placeholder('album', n.artist, n.album)) al
                on n.album is not null
             order by n.ref
            %1$s
            returning id, uri),
        linked as (
            insert into track_artists (track_id, position, artist_id)
            select c.id, 0, a.artist_id
              from created c
              join import_new n on n.ref = c.uri
              join import_artists a on a.name = n.artist
             order by 1
            %1$s)
        insert into import_found (ref, track_id) select uri, id from created$q$, conflict);

    -- created by a concurrent sync in the meantime
    insert into import_found (ref, track_id)
    select r.ref, t.id from import_refs r join tracks t on t.uri = r.ref
     where not exists (select 1 from import_found f where f.ref = r.ref);

    return query select f.ref, f.track_id from import_found f;
    -- truncate, not delete: deleted rows stay in the tables until the transaction ends
    truncate import_refs, import_found, import_new, import_artists;
end $$;

-- The stored plays an import pairs with its own (sync/history_import/match.py): Web API
-- plays gain the export's ms_played (p_fill_at, p_fill_ms), account-data plays the
-- extended history covers are deleted (p_replace_at). Returns the played_at of every
-- play changed, whose analytics days the caller refreshes.
create or replace function history_import_merge(
    p_user integer,
    p_fill_at timestamptz[],
    p_fill_ms integer[],
    p_replace_at timestamptz[]
) returns setof timestamptz
language plpgsql set jit = off as $$
begin
    if cardinality(p_fill_at) > 0 then
        return query
            update listening_history h set ms_played = v.ms
              from unnest(p_fill_at, p_fill_ms) as v(at, ms)
             where h.user_id = p_user and h.played_at = v.at
         returning h.played_at;
    end if;
    if cardinality(p_replace_at) > 0 then
        return query
            delete from listening_history h
             where h.user_id = p_user and h.played_at = any(p_replace_at)
         returning h.played_at;
    end if;
end $$;

-- A bulk load (docs/import.md, "Bulk mode") drops the foreign keys of listening_history,
-- tracks and track_artists inside its transaction, a per-row check costing more than
-- the insert itself, and adds them back (validating every row) before commit. Returns
-- (table, constraint, definition) of what it dropped, for history_import_add_keys.
create or replace function history_import_drop_keys()
returns table (tbl text, constraint_name text, definition text)
language plpgsql as $$
declare
    r record;
begin
    for r in select conrelid::regclass::text as t, conname as n, pg_get_constraintdef(oid) as d
               from pg_constraint
              where conrelid = any(array['listening_history', 'tracks', 'track_artists']
                                   ::regclass[])
                and contype = 'f'
              order by 1, 2 loop
        execute format('alter table %I drop constraint %I', r.t, r.n);
        tbl := r.t; constraint_name := r.n; definition := r.d;
        return next;
    end loop;
end $$;

create or replace function history_import_add_keys(
    p_tables text[], p_names text[], p_definitions text[]
) returns void
language plpgsql as $$
declare
    r record;
begin
    for r in select * from unnest(p_tables, p_names, p_definitions) as k(t, n, d) loop
        execute format('alter table %I add constraint %I ', r.t, r.n) || r.d;
    end loop;
end $$;

-- These functions write: not for Supabase's API roles (00_privileges.sql).
call revoke_execute_from_api(
    'catalogue_import_stage()',
    'catalogue_import_tracks(boolean)',
    'history_import_merge(integer, timestamptz[], integer[], timestamptz[])',
    'history_import_drop_keys()',
    'history_import_add_keys(text[], text[], text[])'
);
