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
-- `sync run` stores the tracks it fetched with catalogue_upsert, which does this first.

-- Obsolete: existed before this file did, replaced by catalogue_upsert.
drop function if exists complete_export_tracks(jsonb);
drop function if exists adopt_export_placeholders(jsonb);

-- The placeholder URIs (sql/003, docs/import.md) an export import gives these names:
-- the one place they are written in SQL (Python: sync/store/catalogue.py placeholder,
-- which the parser uses; tests/history_import/test_same_song.py holds both to one table of
-- cases). Names are cut to 300 characters.
create or replace function catalogue_placeholder(p_kind text, p_artist text, p_name text)
returns text language sql immutable parallel safe as $$
    select case p_kind
           when 'artist' then 'spotify:export-artist:' || left(p_name, 300)
           when 'album' then 'spotify:export-album:' || left(coalesce(p_artist, ''), 300)
                             || ':' || left(p_name, 300)
           else 'spotify:export:' || left(coalesce(p_artist, ''), 300) || ':' || left(p_name, 300)
           end
$$;

-- The catalogue write of `sync run`, in one call: makes sure every fetched track exists
-- with its album and artists, and returns each track's id. p_tracks is the fetched
-- tracks as JSON (sync/store/plays.py _track_json):
-- [{uri, spotify_id, name, duration_ms, explicit, is_local, isrc, track_number,
--   disc_number, album: {uri, spotify_id, name, album_type, release_date, image_url} | null,
--   artists: [{uri, spotify_id, name}, ...]}, ...]
-- Returns one row per distinct track uri: (uri, track_id, completed), completed when a
-- stored track changed in a way its plays' analytics depend on (it gained its album, a
-- length while some plays are estimated, other artists, or was merged); the analytics
-- of those tracks are refreshed here, in the caller's transaction.
--
-- Usually (no placeholder and nothing incomplete among the page's names) it only
-- inserts the missing rows: artists, then albums, then tracks, then track links, each
-- in uri (key) order, so concurrent users take row locks in one order and cannot
-- deadlock. Otherwise it first takes the catalogue advisory lock (sync/db/locks.py
-- CATALOGUE, 7307), so adoptions are serialised, and:
--   placeholders take on their real identity (URI, Spotify id, metadata) when the real
--   row does not exist yet; two placeholders of one real album (a compilation imported
--   under two album artists) become one; a placeholder whose real row exists already is
--   merged into it (references repointed, the placeholder deleted);
--   incomplete tracks get length, album and the rest; a track's credit differing from
--   the fetched artists (an import credits the album's artist) is replaced.
-- Every statement here touches a page's worth of rows by key: `enable_seqscan = off`
-- keeps a plan made while the catalogue was small (a first sync into empty tables,
-- cached for the connection) from reading whole tables later (tests/test_catalogue.py),
-- and generic plans are made once per connection, not planned anew on every call.
create or replace function catalogue_upsert(p_tracks jsonb)
returns table (uri text, track_id integer, completed boolean)
language plpgsql set jit = off set enable_seqscan = off set plan_cache_mode = force_generic_plan as $$
declare
    page     jsonb[];
    credits  jsonb[];
    changed  integer[] := '{}';
    r        record;
    target   integer;
    credit_t integer[];
    credit_p smallint[];
    credit_a integer[];
    uncredited integer[] := '{}';
begin
    -- One entry per track uri (the last one wins), in uri order. An array, not jsonb:
    -- the planner takes `unnest(page)` for the handful of rows it is and probes the
    -- uri indexes, where for `jsonb_array_elements` it guessed 100 rows and read
    -- every stored track instead (a growing cost per user and run).
    select coalesce(array_agg(x.t order by x.t->>'uri'), '{}') into page
      from (select distinct on (e.t->>'uri') e.t
              from jsonb_array_elements(p_tracks) with ordinality as e(t, i)
             order by e.t->>'uri', e.i desc) x;
    -- The page's credits, each artist with its track's uri and position: an array too.
    select coalesce(array_agg(x.a || jsonb_build_object('track', t->>'uri', 'pos', x.i)
                              order by t->>'uri', x.i), '{}')
      into credits
      from unnest(page) t, jsonb_array_elements(t->'artists') with ordinality as x(a, i);

    -- (Placeholder names are looked up as `uri = any(array(...))`: one index probe
    -- each, where `exists` under `or` hashed every album's uri.)
    if exists (select 1 from artists p
                where p.uri = any(array(select catalogue_placeholder('artist', null, c->>'name')
                                          from unnest(credits) c)))
       or exists (select 1 from albums p
                   where p.uri = any(array(select catalogue_placeholder(
                                                  'album', t->'artists'->0->>'name', t->'album'->>'name')
                                             from unnest(page) t)))
       or exists (select 1 from tracks p
                   where p.uri = any(array(select catalogue_placeholder(
                                                  'track', t->'artists'->0->>'name', t->>'name')
                                             from unnest(page) t)))
       or exists (select 1 from unnest(page) t
                    join tracks p on p.uri = t->>'uri'
                    left join albums al on al.id = p.album_id
                   where al.uri like 'spotify:export-album:%'
                      or (p.duration_ms is null and t->>'duration_ms' is not null)
                      or (p.album_id is null and t->'album'->>'uri' is not null)
                      or array(select a.uri from track_artists ta join artists a on a.id = ta.artist_id
                                where ta.track_id = p.id order by ta.position)
                         is distinct from array(select a->>'uri' from jsonb_array_elements(t->'artists')
                                                       with ordinality as x(a, i)
                                                 order by x.i))
    then
        perform pg_advisory_xact_lock(7307);  -- sync/db/locks.py CATALOGUE

        -- Artists: adopt the placeholder of the name, or merge it into the real artist.
        for r in select distinct on (p.id) p.id, c->>'uri' as real_uri, c->>'spotify_id' as sid,
                        (select id from artists x where x.uri = c->>'uri') as real_id
                   from unnest(credits) c
                   join artists p on p.uri = catalogue_placeholder('artist', null, c->>'name')
                  where c->>'uri' like 'spotify:artist:%'
                  order by p.id, c->>'uri' loop
            if r.real_id is null and not exists (select 1 from artists x where x.uri = r.real_uri) then
                update artists set uri = r.real_uri, spotify_id = r.sid where id = r.id;
            else
                target := coalesce(r.real_id, (select id from artists x where x.uri = r.real_uri));
                changed := changed || array(select ta.track_id from track_artists ta
                                             where ta.artist_id = r.id order by 1);
                update track_artists set artist_id = target where artist_id = r.id;
                delete from artists where id = r.id;
            end if;
        end loop;

        -- Albums: every placeholder named by the page's tracks (first artist : album) of
        -- one real album becomes that album: the first adopts it unless it exists, the
        -- others merge into it.
        -- (Also the placeholder album of the stored track, which the import named after
        -- the album's artist where the Web API names the track's.)
        for r in select distinct on (c.id) c.id, c.al
                   from (select p.id, t->'album' as al
                           from unnest(page) t
                           join albums p on p.uri = catalogue_placeholder(
                                    'album', t->'artists'->0->>'name', t->'album'->>'name')
                         union all
                         select p.id, t->'album'
                           from unnest(page) t
                           join tracks s on s.uri in (t->>'uri', catalogue_placeholder(
                                    'track', t->'artists'->0->>'name', t->>'name'))
                           join albums p on p.id = s.album_id
                          where p.uri like 'spotify:export-album:%') c
                  where c.al->>'uri' like 'spotify:album:%'
                  order by c.id, c.al->>'uri' loop
            target := (select id from albums x where x.uri = r.al->>'uri');
            if target is null then
                update albums
                   set uri = r.al->>'uri', spotify_id = r.al->>'spotify_id',
                       album_type = r.al->>'album_type', release_date = r.al->>'release_date',
                       image_url = r.al->>'image_url'
                 where id = r.id;
            else
                changed := changed || array(select x.id from tracks x where x.album_id = r.id
                                             order by 1);
                update tracks set album_id = target where album_id = r.id;
                delete from albums where id = r.id;
            end if;
        end loop;

        -- Tracks: a placeholder track takes on the real identity, or its plays move to
        -- the real track.
        for r in select distinct on (p.id) p.id, t
                   from unnest(page) t
                   join tracks p on p.uri = catalogue_placeholder(
                            'track', t->'artists'->0->>'name', t->>'name')
                  where t->>'uri' like 'spotify:track:%'
                  order by p.id, t->>'uri' loop
            target := (select id from tracks x where x.uri = r.t->>'uri');
            if target is null then
                update tracks set uri = r.t->>'uri', spotify_id = r.t->>'spotify_id'
                 where id = r.id;
            else
                changed := changed || target;
                update listening_history set track_id = target where track_id = r.id;
                delete from track_artists where track_artists.track_id = r.id;
                delete from tracks where id = r.id;
            end if;
        end loop;
    end if;

    -- Missing rows, each table in uri order. Rows that exist are left out before the
    -- insert (an index probe), not by `on conflict` alone: a conflicting insert still
    -- draws an id from the table's sequence and takes a speculative lock, for every
    -- known track of every hourly write. `on conflict` stays for concurrent writers.
    insert into artists (uri, spotify_id, name)
    select distinct on (c->>'uri') c->>'uri', c->>'spotify_id', coalesce(c->>'name', '')
      from unnest(credits) c
     where c->>'uri' is not null
       and not exists (select 1 from artists x where x.uri = c->>'uri')
     order by c->>'uri'
        on conflict do nothing;
    insert into albums (uri, spotify_id, name, album_type, release_date, image_url)
    select distinct on (t->'album'->>'uri')
           t->'album'->>'uri', t->'album'->>'spotify_id', coalesce(t->'album'->>'name', ''),
           t->'album'->>'album_type', t->'album'->>'release_date', t->'album'->>'image_url'
      from unnest(page) t
     where t->'album'->>'uri' is not null
       and not exists (select 1 from albums x where x.uri = t->'album'->>'uri')
     order by t->'album'->>'uri'
        on conflict do nothing;

    if exists (select 1 from unnest(page) t join tracks p on p.uri = t->>'uri'
                where (p.duration_ms is null and t->>'duration_ms' is not null)
                   or (p.album_id is null and t->'album'->>'uri' is not null)) then
        perform pg_advisory_xact_lock(7307);  -- (held already when the check above was)
        -- Tracks an import created lack what only the Web API knows, their album included.
        -- A length changes the analytics only of plays with an estimated listening time.
        with done as (
                update tracks p
                   set duration_ms  = coalesce(p.duration_ms, (t->>'duration_ms')::integer),
                       explicit     = coalesce(p.explicit, (t->>'explicit')::boolean),
                       isrc         = coalesce(p.isrc, t->>'isrc'),
                       track_number = coalesce(p.track_number, (t->>'track_number')::smallint),
                       disc_number  = coalesce(p.disc_number, (t->>'disc_number')::smallint),
                       album_id     = coalesce(p.album_id,
                                               (select id from albums where albums.uri = t->'album'->>'uri'))
                  from unnest(page) t, tracks o
                 where p.uri = t->>'uri' and o.id = p.id
                   and (p.duration_ms is null or p.album_id is null)
                   and (t->>'duration_ms' is not null or t->'album'->>'uri' is not null)
                returning p.id, o.album_id is null and p.album_id is not null as got_album,
                          o.duration_ms is null and p.duration_ms is not null as got_length)
        select changed || coalesce(array_agg(x.id), '{}') into changed
          from (select id from done where got_album
                union
                select id from done where got_length and exists (
                    select 1 from listening_history h
                     where h.track_id = done.id and h.ms_played is null)) x;
    end if;

    insert into tracks (uri, spotify_id, name, album_id, duration_ms, explicit, is_local, isrc,
                        track_number, disc_number)
    select t->>'uri', t->>'spotify_id', coalesce(t->>'name', ''),
           (select id from albums where albums.uri = t->'album'->>'uri'),
           (t->>'duration_ms')::integer, (t->>'explicit')::boolean,
           coalesce((t->>'is_local')::boolean, false), t->>'isrc',
           (t->>'track_number')::smallint, (t->>'disc_number')::smallint
      from unnest(page) t
     where not exists (select 1 from tracks x where x.uri = t->>'uri')
     order by t->>'uri'
        on conflict do nothing;

    -- Credits: the fetched artists in their order. A stored credit that differs (an
    -- import credits the album's artist) is replaced, under the lock.
    select coalesce(array_agg(c.tid order by c.tid, c.pos), '{}'),
           coalesce(array_agg(c.pos order by c.tid, c.pos), '{}'),
           coalesce(array_agg(c.aid order by c.tid, c.pos), '{}')
      into credit_t, credit_p, credit_a
      from (select p.id as tid, a.id as aid,
                   (row_number() over (partition by p.id
                                       order by min((x->>'pos')::integer)) - 1)::smallint as pos
              from unnest(credits) x
              join tracks p on p.uri = x->>'track'
              join artists a on a.uri = x->>'uri'
             group by p.id, a.id) c;
    for r in select c.tid from unnest(credit_t) c(tid)
              where exists (select 1 from track_artists ta where ta.track_id = c.tid)
                and array(select ta.artist_id from track_artists ta
                           where ta.track_id = c.tid order by ta.position)
                    is distinct from array(select d.a from unnest(credit_t, credit_a) d(t, a)
                                            where d.t = c.tid)
              group by c.tid order by c.tid loop
        perform pg_advisory_xact_lock(7307);
        changed := changed || r.tid;
        with gone as (delete from track_artists ta where ta.track_id = r.tid returning ta.artist_id)
        select uncredited || array_agg(artist_id) into uncredited from gone;
    end loop;
    insert into track_artists (track_id, position, artist_id)
    select * from unnest(credit_t, credit_p, credit_a) as n(t, p, a)
     where not exists (select 1 from track_artists ta where ta.track_id = n.t)
        on conflict do nothing;
    -- placeholder artists the replaced credits left without any track
    delete from artists a
     where a.id = any(uncredited)
       and a.uri like 'spotify:export-artist:%'
       and not exists (select 1 from track_artists ta where ta.artist_id = a.id);

    changed := array(select distinct c from unnest(changed) c where c is not null order by 1);
    if cardinality(changed) > 0 then
        perform analytics_refresh_tracks(changed);
    end if;
    return query
        select p.uri, p.id, p.id = any(changed)
          from unnest(page) t join tracks p on p.uri = t->>'uri'
         order by p.uri;
end $$;

-- These functions write: not for Supabase's API roles (00_privileges.sql).
call revoke_execute_from_api(
    'catalogue_upsert(jsonb)'
);
