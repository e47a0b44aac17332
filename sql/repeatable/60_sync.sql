-- 60_sync.sql: one user's outcome of `sync run`, written in one call (one round trip).
-- Repeatable: the current definitions, applied by `python -m sync migrate` whenever this
-- file's checksum differs from the one recorded in schema_files, after the numbered
-- migrations and the repeatable files before it (docs/schema.md). Safe to run any
-- number of times, and to paste into Supabase's SQL editor after the numbered files.
--
-- The database is usually across a network (20-80 ms away), so everything the job
-- writes for one user happens here, in the caller's single statement (and so in one
-- transaction): the plays not stored yet with their catalogue rows (catalogue_upsert,
-- 20_catalogue.sql), minus the plays an import holds already
-- (history_api_plays_to_insert, 10_history.sql), the analytics of the days they fall on,
-- the user's row in sync_run_users with the run's alive_until pushed forward, and the
-- release of the run's claim on the user (sql/006). Returns the played_at of each new
-- play. p_result: {"status", "started_at", "fetched", "skipped_items", "possible_gap",
-- "error_class", "error", "warnings": [...]} as sync.store.outcome writes it.
create or replace function sync_store_user(
    p_user integer,
    p_holder bigint,             -- the claim to release (the run id, or a dry run's number)
    p_run bigint,                -- null: record nothing (dry run)
    p_played_at timestamptz[],   -- the fetched plays' end times ...
    p_track_uris text[],         -- ... and their tracks' uris, in the same order
    p_tracks jsonb,              -- the tracks, as catalogue_upsert reads them
    p_result jsonb,
    p_alive interval,
    p_tolerance_ms integer
-- (generic plans, made once per connection, probing by key: see 20_catalogue.sql)
) returns setof timestamptz
language plpgsql set jit = off set enable_seqscan = off set plan_cache_mode = force_generic_plan as $$
declare
    v_times timestamptz[];
    v_uris text[];
    v_ids integer[];
    v_new timestamptz[];
begin
    -- Plays stored already (the job leaves out those it saw in the claim) are dropped;
    -- the catalogue is written only when some play is new.
    select array_agg(p.t order by p.t), array_agg(p.u order by p.t)
      into v_times, v_uris
      from unnest(p_played_at, p_track_uris) as p(t, u)
     where not exists (select 1 from listening_history h
                        where h.user_id = p_user and h.played_at = p.t);
    if v_times is not null then
        select array_agg(c.track_id order by x.ord)
          into v_ids
          from unnest(v_uris) with ordinality as x(uri, ord)
          -- (the job sends only the tracks of plays it did not find stored)
          join catalogue_upsert(p_tracks) c on c.uri = x.uri;
        with ins as (
            insert into listening_history (user_id, played_at, track_id, source)
            select p_user, u.t, u.k, 0  -- Source.API (sync/store/sources.py)
              from history_api_plays_to_insert(p_user, v_times, v_ids, p_tolerance_ms) as u(t, k)
            on conflict (user_id, played_at) do nothing
            returning listening_history.played_at)
        select array_agg(ins.played_at) into v_new from ins;
        if v_new is not null then
            perform analytics_refresh_plays(p_user, v_new);
        end if;
    end if;
    if p_run is not null then
        -- Every worker writes here: only push alive_until when a minute of it has passed,
        -- so that concurrent users do not queue on the run's one row.
        update sync_runs set alive_until = now() + p_alive
         where id = p_run and status = 'running'
           and (alive_until is null or alive_until < now() + p_alive - interval '1 minute');
        insert into sync_run_users (run_id, user_id, status, started_at, finished_at, fetched,
               new_tracks, skipped_items, possible_gap, error_class, error, warnings)
        values (p_run, p_user, p_result->>'status', (p_result->>'started_at')::timestamptz,
               now(), coalesce((p_result->>'fetched')::integer, 0), coalesce(cardinality(v_new), 0),
               coalesce((p_result->>'skipped_items')::integer, 0),
               coalesce((p_result->>'possible_gap')::boolean, false),
               p_result->>'error_class', p_result->>'error',
               coalesce(array(select jsonb_array_elements_text(p_result->'warnings')), '{}'))
        on conflict (run_id, user_id) do update set status = excluded.status,
               finished_at = excluded.finished_at, fetched = excluded.fetched,
               new_tracks = excluded.new_tracks, skipped_items = excluded.skipped_items,
               possible_gap = excluded.possible_gap, error_class = excluded.error_class,
               error = excluded.error, warnings = excluded.warnings;
    end if;
    update user_tokens set lease_run = null, lease_until = null
     where id = p_user and lease_run = p_holder;
    return query select unnest(coalesce(v_new, '{}'::timestamptz[]));
end $$;

call revoke_execute_from_api(
    'sync_store_user(integer, bigint, bigint, timestamptz[], text[], jsonb, jsonb, interval, integer)'
);
