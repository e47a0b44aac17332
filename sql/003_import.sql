-- 003_import.sql: support for `python -m sync import` (Spotify's data export).
-- Idempotent: safe to paste into Supabase's SQL editor more than once, after 001.
--
-- One play, one row, whatever the source: an export play and a Web API play of the
-- same song whose end times are close are the same play (docs/import.md, "Matching").
-- The importer pairs them itself; `sync run` inserts only the plays that
-- history_api_plays_to_insert lets through.
--
-- "Same song" = same track id, or the same lower-cased track name and primary artist
-- name (account data has no track URI; Spotify relinks track ids between markets).
-- "Close" = the gap between the two end times is at most p_tolerance_ms, where an
-- export end time covers its whole second (extended history) or minute (account data).

drop function if exists history_export_match(integer, timestamptz, integer, integer);

-- The fetched plays (played_at, track id) that no imported play already stands for:
-- `sync run` inserts only these. Costs one index range scan per play, stopping at the
-- first imported play found, plus primary-key lookups of the names only for the
-- imported plays close enough in time but of another track id.
-- Written so the planner sees that cost: a lateral subquery with `limit 1` instead of
-- `not exists` (whose per-play estimate grew with the user's whole history), and the
-- name match as a per-row comparison (an `exists` there was planned as a hash of
-- every same-name pair of tracks in the catalogue). `set jit = off` besides: on
-- Postgres 15 with JIT on, a large estimate made every call compile JIT code, which
-- cost more than half a second per user and sync (tests/bench/bench_insert_plays.py).
create or replace function history_api_plays_to_insert(
    p_user integer,
    p_times timestamptz[],
    p_tracks integer[],
    p_tolerance_ms integer default 90000
) returns table (played_at timestamptz, track_id integer)
language sql stable set jit = off as $$
    select u.t, u.k
      from unnest(p_times, p_tracks) as u(t, k)
      -- the fetched track's lower-cased name and primary artist name
      left join lateral (
           select lower(t.name) as name, lower(coalesce(a.name, '')) as artist
             from tracks t
             left join track_artists ta on ta.track_id = t.id and ta.position = 0
             left join artists a on a.id = ta.artist_id
            where t.id = u.k) f on true
      -- an imported play of the same song whose end time is close
      left join lateral (
           select 1 as found
             from listening_history h
            where h.user_id = p_user
              and h.source in (1, 2)
              and h.played_at between u.t - make_interval(secs => (60000 + p_tolerance_ms) / 1000.0)
                                  and u.t + make_interval(secs => p_tolerance_ms / 1000.0)
              and greatest(
                      extract(epoch from u.t - h.played_at) * 1000
                          - case h.source when 1 then 1000 else 60000 end,
                      extract(epoch from h.played_at - u.t) * 1000,
                      0) <= p_tolerance_ms
              and (h.track_id = u.k
                   or (f.name, f.artist) = (
                          select lower(ht.name), lower(coalesce(ha.name, ''))
                            from tracks ht
                            left join track_artists hta
                              on hta.track_id = ht.id and hta.position = 0
                            left join artists ha on ha.id = hta.artist_id
                           where ht.id = h.track_id))
            limit 1) m on true
     where m.found is null
$$;

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

-- Placeholder rows are few; these partial indexes make "are there any?" instant, so
-- the function below costs next to nothing for the many databases without an import.
create index if not exists artists_export_placeholder_idx on artists (id)
    where uri like 'spotify:export-artist:%';
create index if not exists albums_export_placeholder_idx on albums (id)
    where uri like 'spotify:export-album:%';
create index if not exists tracks_export_placeholder_idx on tracks (id)
    where uri like 'spotify:export:%';
create index if not exists tracks_incomplete_idx on tracks (id) where duration_ms is null;

drop function if exists complete_export_tracks(jsonb);

-- Returns the ids of stored tracks it gave an album, or a length while some of their
-- plays have an estimated listening time (Web API plays): the analytics of their plays
-- are then stale (per-album figures; estimates), and the caller refreshes them
-- (sync/storage.py upsert_tracks). Usually empty.
-- (It returned void before: create or replace cannot change a return type, hence the drop.)
drop function if exists adopt_export_placeholders(jsonb);

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

insert into schema_migrations (version) values ('003') on conflict do nothing;
