-- 31_analytics_rebuild.sql: rebuilding one user's listening analytics (tables in
-- 002_analytics.sql) from scratch: `aggregate --full`, and a bulk import's last step.
-- Repeatable: the current definitions, applied by `python -m sync migrate` whenever this
-- file's checksum differs from the one recorded in schema_files, after the numbered
-- migrations and the repeatable files before it (docs/schema.md). Safe to run any
-- number of times, and to paste into Supabase's SQL editor after the numbered files.
-- Edit functions here, not in the numbered migrations (those are append-only).
--
-- Split from 30_analytics_write.sql (which keeps the incremental refresh and the
-- helpers used here: analytics_play_ms, analytics_hours): create or replace in this
-- file replaces the definition that file used to make, so nothing is left behind.
-- Entity kinds (column kind): 1 = track, 2 = artist, 3 = album (as in 30_...).

-- Rebuild every aggregate of one user from the history. Written independently
-- of the incremental path (30_analytics_write.sql): the tests check that both agree row for row.
create or replace function analytics_rebuild(p_user integer) returns void
language plpgsql
-- Hash joins and aggregates suit these few big passes; the planner cannot estimate
-- the CTEs well, so sort-based plans are switched off here.
set work_mem = '128MB' set jit = off set enable_mergejoin = off set enable_sort = off as $$
declare
    tz      text;
    has_est boolean;
begin
    perform pg_advisory_xact_lock(7306, p_user);
    delete from listening_days          where user_id = p_user;
    delete from listening_hour_weekday  where user_id = p_user;
    delete from listening_day_entities  where user_id = p_user;
    delete from listening_entity_totals where user_id = p_user;
    select time_zone into tz from user_tokens where id = p_user;
    if tz is null then
        return;
    end if;
    -- Only estimated plays need the time since the previous play, and the window that
    -- finds it costs an eighth of the rebuild: skip it when every play is exact (imports).
    -- (Both branches below are in the plan; a one-time filter runs just one of them.)
    has_est := exists (select 1 from listening_history where user_id = p_user and ms_played is null);

    with p as materialized (
        select h.played_at,
               h.lt::date as day,
               date_part('hour', h.lt)::smallint as hour,   -- (extract() is a slower numeric)
               h.track_id,
               t.album_id,
               analytics_play_ms(h.ms_played, t.duration_ms,
                   round(date_part('epoch', h.played_at - h.prev_at) * 1000)::bigint) as ms,
               h.ms_played is null as est
          from (select played_at, played_at at time zone tz as lt, track_id, ms_played,
                       lag(played_at) over (order by played_at) as prev_at
                  from listening_history where user_id = p_user and has_est
                 union all
                select played_at, played_at at time zone tz, track_id, ms_played, null
                  from listening_history where user_id = p_user and not has_est) h
          join tracks t on t.id = h.track_id
    ), tt as materialized (
        -- all-time per track first; artists and albums from those (far fewer rows than plays)
        select track_id, album_id, count(*)::bigint as plays, sum(ms)::bigint as ms
          from p group by track_id, album_id
    ), ta as materialized (
        select distinct track_id, artist_id from track_artists
    ), dp as materialized (
        -- One pass groups the plays by day (a few thousand groups); each day's entities
        -- and hours are then counted within that day, in small hash tables. Hashing
        -- (day, entity) pairs over all plays instead (nearly one pair per play) costs
        -- half as much again.
        select day, count(*)::integer as plays, sum(ms)::bigint as ms,
               coalesce(sum(ms) filter (where est), 0)::bigint as est_ms,
               min(played_at) as first_at, max(played_at) as last_at,
               array_agg(track_id) as tracks, array_agg(album_id) as albums,
               array_agg(hour) as hours, array_agg(ms) as mss
          from p group by day
    ), da as (
        select p.day, array_agg(ta.artist_id) as artists, array_agg(p.ms) as mss
          from p join ta on ta.track_id = p.track_id group by p.day
    ), ins_e as (
        -- (the order of entities within a day's arrays is unspecified: sorting them
        -- here would cost a third of the rebuild)
        insert into listening_day_entities (user_id, kind, day, entity_ids, plays, listening_ms)
        select p_user, x.kind, d.day, x.e, x.n, x.m
          from dp d
         cross join lateral (
               select 1::smallint as kind, array_agg(e) as e, array_agg(n) as n, array_agg(m) as m
                 from (select e, count(*)::integer as n, sum(m)::bigint as m
                         from unnest(d.tracks, d.mss) as u(e, m) group by e) g
               union all
               select 3::smallint, array_agg(e), array_agg(n), array_agg(m)
                 from (select e, count(*)::integer as n, sum(m)::bigint as m
                         from unnest(d.albums, d.mss) as u(e, m) where e is not null group by e) g
               having count(*) > 0) x
        union all
        select p_user, 2::smallint, d.day, x.e, x.n, x.m
          from da d
         cross join lateral (
               select array_agg(e) as e, array_agg(n) as n, array_agg(m) as m
                 from (select e, count(*)::integer as n, sum(m)::bigint as m
                         from unnest(d.artists, d.mss) as u(e, m) group by e) g) x
        returning kind, day, cardinality(entity_ids) as n
    ), ins_a as (
        insert into listening_entity_totals (user_id, kind, entity_id, plays, listening_ms)
        select p_user, 1::smallint, track_id, plays, ms from tt
        union all
        select p_user, 2::smallint, ta.artist_id, sum(tt.plays)::bigint, sum(tt.ms)::bigint
          from tt join ta on ta.track_id = tt.track_id group by ta.artist_id
        union all
        select p_user, 3::smallint, album_id, sum(plays)::bigint, sum(ms)::bigint
          from tt where album_id is not null group by album_id
        order by 2, 3
    ), hd as materialized (
        -- 24 entries a day, 0 for hours without plays
        select d.day, h.hp, h.hm
          from dp d
         cross join lateral (
               select array_agg(coalesce(u.n, 0) order by g.h)::integer[] as hp,
                      array_agg(coalesce(u.m, 0) order by g.h)::bigint[] as hm
                 from generate_series(0, 23) as g(h)
                 left join (select h, count(*) as n, sum(m) as m
                              from unnest(d.hours, d.mss) as v(h, m) group by h) u on u.h = g.h) h
    ), ins_hw as (
        insert into listening_hour_weekday (user_id, weekday, hour, plays, listening_ms)
        select p_user, extract(isodow from hd.day)::smallint, (x.i - 1)::smallint, sum(x.n), sum(x.m)
          from hd cross join lateral unnest(hd.hp, hd.hm) with ordinality as x(n, m, i)
         group by 2, 3
        having sum(x.n) > 0
    ), counts as (
        select day, coalesce(sum(n) filter (where kind = 1), 0)::integer as tracks,
               coalesce(sum(n) filter (where kind = 2), 0)::integer as artists
          from ins_e group by day
    )
    insert into listening_days (user_id, day, plays, listening_ms, estimated_ms, distinct_tracks,
                                distinct_artists, first_played_at, last_played_at,
                                hour_plays, hour_ms)
    select p_user, d.day, d.plays, d.ms, d.est_ms, c.tracks, c.artists, d.first_at, d.last_at,
           hd.hp, hd.hm
      from dp d join counts c on c.day = d.day join hd on hd.day = d.day
     order by d.day;
end $$;

-- This function writes: not for Supabase's API roles (00_privileges.sql).
call revoke_execute_from_api(
    'analytics_rebuild(integer)'
);
