-- 10_history.sql: which fetched Web API plays `sync run` inserts.
-- Repeatable: the current definitions, applied by `python -m sync migrate` whenever this
-- file's checksum differs from the one recorded in schema_files, after the numbered
-- migrations and the repeatable files before it (docs/schema.md). Safe to run any
-- number of times, and to paste into Supabase's SQL editor after the numbered files.
-- Edit functions here, not in the numbered migrations (those are append-only).
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
-- Source codes (listening_history.source) are those of sync/store/sources.py's Source:
-- 0 Web API, 1 extended history, 2 account data; its PRECISION_MS gives the 1000 and
-- 60000 below. tests/store/test_codes.py checks this function against both.

-- The same-song rule, the one place it is written in SQL (Python: sync/store/sources.py
-- song_key, which must agree; tests/test_catalogue.py checks both on tricky names):
-- lower-cased track name, chr(31), lower-cased primary artist name; a missing name
-- counts as empty. lower() maps each character on its own, by the database's ctype.
create or replace function song_key(track text, artist text) returns text
language sql immutable parallel safe as $$
    select lower(coalesce(track, '')) || chr(31) || lower(coalesce(artist, ''))
$$;

-- Obsolete: existed before this file did, replaced by history_api_plays_to_insert.
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
-- PL/pgSQL, not SQL: a SQL function with a SET clause is not inlined, and it planned
-- its query anew on every call (0.6 of its 0.75 ms per user); PL/pgSQL keeps the plan
-- for the connection (a generic plan: made once). That plan may be made while the
-- tables are nearly empty (a first sync), so `enable_seqscan = off`: it probes by key,
-- however small they looked.
create or replace function history_api_plays_to_insert(
    p_user integer,
    p_times timestamptz[],
    p_tracks integer[],
    p_tolerance_ms integer default 90000
) returns table (played_at timestamptz, track_id integer)
language plpgsql stable set jit = off set enable_seqscan = off
set plan_cache_mode = force_generic_plan as $$
#variable_conflict use_column
begin
    return query
    select u.t, u.k
      from unnest(p_times, p_tracks) as u(t, k)
      -- the fetched track's song key
      left join lateral (
           select song_key(t.name, a.name) as song
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
                   -- (a row comparison: a plain `f.song = (select ...)` was estimated
                   -- at 7x the cost, enough to bring JIT back on other servers)
                   or (f.song, 1) = (
                          select song_key(ht.name, ha.name), 1
                            from tracks ht
                            left join track_artists hta
                              on hta.track_id = ht.id and hta.position = 0
                            left join artists ha on ha.id = hta.artist_id
                           where ht.id = h.track_id))
            limit 1) m on true
     where m.found is null;
end $$;
