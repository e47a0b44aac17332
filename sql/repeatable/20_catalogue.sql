-- 20_catalogue.sql: imported placeholder tracks, albums and artists
-- taking on their identity when a sync sees them (docs/import.md).
-- Repeatable: the current definitions, applied by `python -m sync migrate` whenever this
-- file's checksum differs from the one recorded in schema_files, after the numbered
-- migrations and the repeatable files before it (docs/schema.md). Safe to run any
-- number of times, and to paste into Supabase's SQL editor after the numbered files.
-- Edit functions here, not in the numbered migrations (those are append-only).

-- Placeholders. The export names artists and albums but does not identify them, and
-- account data does not identify tracks either, so the importer creates rows with
-- placeholder URIs (docs/import.md, "Tracks, albums and artists"):
--     spotify:export-artist:<artist>          spotify:export-album:<artist>:<album>
--     spotify:export:<artist>:<track>         (names cut to 300 characters)
-- When `sync run` later sees the real thing, the placeholder row takes on its identity
-- (URI, Spotify id, metadata) instead of a second row being created: ids stay, so plays,
-- track links and analytics stay as they are. p_tracks is the fetched tracks as JSON:
-- [{uri, spotify_id, name, duration_ms, explicit, isrc, track_number, disc_number,
--   album: {uri, spotify_id, name, album_type, release_date, image_url},
--   artists: [{uri, spotify_id, name}, ...]}, ...]
-- `sync run` calls adopt_export_placeholders before storing the tracks it fetched.

-- Obsolete: existed before this file did, replaced by adopt_export_placeholders.
drop function if exists complete_export_tracks(jsonb);

-- Returns the ids of stored tracks it gave an album, or a length while some of their
-- plays have an estimated listening time (Web API plays): the analytics of their plays
-- are then stale (per-album figures; estimates), and the caller refreshes them
-- (sync/storage.py upsert_tracks). Usually empty.
-- It returned void at first: create or replace cannot change a return type, so that
-- version is dropped (only that one: dropping every time would reset its privileges).
do $$
begin
    if exists (select 1 from pg_proc
                where oid = to_regprocedure('adopt_export_placeholders(jsonb)')
                  and prorettype = 'void'::regtype) then
        drop function adopt_export_placeholders(jsonb);
    end if;
end $$;

create or replace function adopt_export_placeholders(p_tracks jsonb) returns integer[]
language plpgsql set jit = off as $$
declare
    new_album   integer[];
    new_length  integer[];
begin
    if exists (select 1 from artists where uri like 'spotify:export-artist:%') then
        update artists p
           set uri = x.a->>'uri', spotify_id = x.a->>'spotify_id'
          from (select distinct on (a->>'name') a
                  from jsonb_array_elements(p_tracks) t, jsonb_array_elements(t->'artists') a
                 where a->>'uri' like 'spotify:artist:%'
                 order by a->>'name', a->>'uri') x
         where p.uri = 'spotify:export-artist:' || left(x.a->>'name', 300)
           and not exists (select 1 from artists r where r.uri = x.a->>'uri');
    end if;

    if exists (select 1 from albums where uri like 'spotify:export-album:%') then
        update albums p
           set uri = x.al->>'uri', spotify_id = x.al->>'spotify_id',
               album_type = x.al->>'album_type', release_date = x.al->>'release_date',
               image_url = x.al->>'image_url'
          from (select distinct on (p_uri) t->'album' as al,
                       'spotify:export-album:'
                           || left(coalesce(t->'artists'->0->>'name', ''), 300)
                           || ':' || left(t->'album'->>'name', 300) as p_uri
                  from jsonb_array_elements(p_tracks) t
                 where t->'album'->>'uri' like 'spotify:album:%'
                 order by p_uri, t->'album'->>'uri') x
         where p.uri = x.p_uri
           and not exists (select 1 from albums r where r.uri = x.al->>'uri');
    end if;

    if exists (select 1 from tracks where uri like 'spotify:export:%') then
        update tracks p
           set uri = x.t->>'uri', spotify_id = x.t->>'spotify_id'
          from (select distinct on (p_uri) t,
                       'spotify:export:' || left(coalesce(t->'artists'->0->>'name', ''), 300)
                           || ':' || left(t->>'name', 300) as p_uri
                  from jsonb_array_elements(p_tracks) t
                 where t->>'uri' like 'spotify:track:%'
                 order by p_uri, t->>'uri') x
         where p.uri = x.p_uri
           and not exists (select 1 from tracks r where r.uri = x.t->>'uri');
    end if;

    -- Tracks an import created lack what only the Web API knows, their album included.
    if exists (select 1 from tracks where duration_ms is null) then
        insert into albums (uri, spotify_id, name, album_type, release_date, image_url)
        select distinct on (t->'album'->>'uri')
               t->'album'->>'uri', t->'album'->>'spotify_id', t->'album'->>'name',
               t->'album'->>'album_type', t->'album'->>'release_date', t->'album'->>'image_url'
          from jsonb_array_elements(p_tracks) t
          join tracks p on p.uri = t->>'uri'
         where p.album_id is null and p.duration_ms is null and t->'album'->>'uri' is not null
         order by t->'album'->>'uri'
            on conflict (uri) do nothing;
        with incomplete as (
            select p.id, p.album_id
              from tracks p
             where p.duration_ms is null
               and p.uri in (select t->>'uri' from jsonb_array_elements(p_tracks) t)
        ), done as (
            update tracks p
               set duration_ms  = coalesce(p.duration_ms, (t->>'duration_ms')::integer),
                   explicit     = coalesce(p.explicit, (t->>'explicit')::boolean),
                   isrc         = coalesce(p.isrc, t->>'isrc'),
                   track_number = coalesce(p.track_number, (t->>'track_number')::smallint),
                   disc_number  = coalesce(p.disc_number, (t->>'disc_number')::smallint),
                   album_id     = coalesce(p.album_id,
                                           (select id from albums where uri = t->'album'->>'uri'))
              from jsonb_array_elements(p_tracks) t, incomplete i
             where p.uri = t->>'uri'
               and i.id = p.id
               and p.duration_ms is null
               and t->>'duration_ms' is not null
            returning p.id, i.album_id is null and p.album_id is not null as got_album
        )
        select coalesce(array_agg(id) filter (where got_album), '{}'),
               coalesce(array_agg(id) filter (where not got_album), '{}')
          into new_album, new_length
          from done;
        -- Imported plays know their listening time, so a length changes nothing for them:
        -- one pass over the history, only when some track got a length but no album.
        if cardinality(new_length) > 0 then
            new_album := new_album || array(
                select distinct h.track_id from listening_history h
                 where h.track_id = any(new_length) and h.ms_played is null);
        end if;
        return array(select distinct x from unnest(new_album) x order by x);
    end if;
    return '{}';
end $$;

-- These functions write: not for Supabase's API roles (00_privileges.sql).
call revoke_execute_from_api(
    'adopt_export_placeholders(jsonb)'
);
