-- 40_analytics_read.sql: reading the listening analytics: any period is a
-- query over at most one row per day and kind (or, for all time, the totals).
-- Repeatable: the current definitions, applied by `python -m sync migrate` whenever this
-- file's checksum differs from the one recorded in schema_files, after the numbered
-- migrations and the repeatable files before it (docs/schema.md). Safe to run any
-- number of times, and to paste into Supabase's SQL editor after the numbered files.
-- Edit functions here, not in the numbered migrations (those are append-only).
--
-- Sums over days use float8 accumulators: exact for integers far beyond any listening
-- history (2^53 ms), and much faster.

-- Plays and listening time per entity of one kind between two local days (inclusive).
create or replace function listening_entities(p_user integer, p_kind smallint, p_from date, p_to date)
returns table (entity_id integer, plays bigint, listening_ms bigint)
language plpgsql stable rows 2000 set jit = off as $$
declare
    span_lo date;
    span_hi date;
begin
    select min(day), max(day) into span_lo, span_hi from listening_days where user_id = p_user;
    if span_lo is null or p_from > p_to or p_from > span_hi or p_to < span_lo then
        return;
    end if;
    if p_from <= span_lo and p_to >= span_hi then
        return query
            select t.entity_id, t.plays, t.listening_ms from listening_entity_totals t
             where t.user_id = p_user and t.kind = p_kind;
        return;
    end if;
    return query
        select x.e, sum(x.p)::bigint, sum(x.m::float8)::bigint
          from (select unnest(d.entity_ids) as e, unnest(d.plays) as p, unnest(d.listening_ms) as m
                  from listening_day_entities d
                 where d.user_id = p_user and d.kind = p_kind and d.day between p_from and p_to) x
         group by x.e;
end $$;

-- How many distinct entities of a kind were played between two local days.
create or replace function listening_entity_count(p_user integer, p_kind smallint, p_from date, p_to date)
returns integer
language plpgsql stable set jit = off as $$
declare
    span_lo date;
    span_hi date;
    n       integer;
begin
    select min(day), max(day) into span_lo, span_hi from listening_days where user_id = p_user;
    if span_lo is null or p_from > p_to or p_from > span_hi or p_to < span_lo then
        return 0;
    end if;
    if p_from <= span_lo and p_to >= span_hi then
        select count(*) into n from listening_entity_totals t
         where t.user_id = p_user and t.kind = p_kind;
    else
        select count(*) into n
          from (select unnest(d.entity_ids) as e from listening_day_entities d
                 where d.user_id = p_user and d.kind = p_kind and d.day between p_from and p_to
                 group by 1) x;
    end if;
    return n;
end $$;

-- The top p_limit entities of a kind between two local days: most plays first,
-- then most listening time, then lowest id (a stable order).
create or replace function listening_top(p_user integer, p_kind smallint, p_from date, p_to date,
                                         p_limit integer default 10)
returns table (rank integer, entity_id integer, plays bigint, listening_ms bigint)
language plpgsql stable rows 10 set jit = off as $$
declare
    span_lo date;
    span_hi date;
begin
    select min(day), max(day) into span_lo, span_hi from listening_days where user_id = p_user;
    if span_lo is null or p_from > p_to or p_from > span_hi or p_to < span_lo then
        return;
    end if;
    if p_from <= span_lo and p_to >= span_hi then
        return query
            select (row_number() over (order by s.plays desc, s.listening_ms desc, s.entity_id))::integer,
                   s.entity_id, s.plays, s.listening_ms
              from (select t.entity_id, t.plays, t.listening_ms from listening_entity_totals t
                     where t.user_id = p_user and t.kind = p_kind
                     order by t.plays desc, t.listening_ms desc, t.entity_id
                     limit p_limit) s;
        return;
    end if;
    return query
        select (row_number() over (order by s.p desc, s.m desc, s.e))::integer, s.e, s.p, s.m
          from (select x.e, sum(x.p)::bigint as p, sum(x.m::float8)::bigint as m
                  from (select unnest(d.entity_ids) as e, unnest(d.plays) as p,
                               unnest(d.listening_ms) as m
                          from listening_day_entities d
                         where d.user_id = p_user and d.kind = p_kind
                           and d.day between p_from and p_to) x
                 group by x.e
                 order by 2 desc, 3 desc, 1
                 limit p_limit) s;
end $$;

-- The named periods, as local days of the user: 7d, 4w, 6m, 12m (each ending
-- today), all, and every calendar year with plays. p_today defaults to the
-- user's local date now.
create or replace function listening_periods(p_user integer, p_zone text, p_today date default null)
returns table (period text, first_day date, last_day date)
language sql stable rows 15 as $$
    with t as (select coalesce(p_today, (now() at time zone p_zone)::date) as today),
         s as (select min(day) as lo, max(day) as hi from listening_days where user_id = p_user)
    select v.period, v.first_day, v.last_day
      from t, s, lateral (values
          ('7d',  t.today - 6,  t.today),
          ('4w',  t.today - 27, t.today),
          ('6m',  (t.today - interval '6 months')::date + 1,  t.today),
          ('12m', (t.today - interval '12 months')::date + 1, t.today),
          ('all', least(coalesce(s.lo, t.today), t.today), greatest(coalesce(s.hi, t.today), t.today))
      ) as v(period, first_day, last_day)
    union all
    select y::text, make_date(y, 1, 1), make_date(y, 12, 31)
      from s, generate_series(extract(year from s.lo)::integer, extract(year from s.hi)::integer) y
$$;

-- Totals for one user between two local days. Kinds: 1 track, 2 artist, 3 album, as
-- sync/analytics/listening.py's Kind (tests/analytics/test_kinds.py compares).
create or replace function listening_summary(p_user integer, p_from date, p_to date)
returns table (plays bigint, listening_ms bigint, estimated_ms bigint, days_listened integer,
               distinct_tracks integer, distinct_artists integer, distinct_albums integer,
               first_played_at timestamptz, last_played_at timestamptz)
language sql stable as $$
    select coalesce(sum(d.plays), 0)::bigint, coalesce(sum(d.listening_ms), 0)::bigint,
           coalesce(sum(d.estimated_ms), 0)::bigint, count(*)::integer,
           listening_entity_count(p_user, 1::smallint, p_from, p_to),
           listening_entity_count(p_user, 2::smallint, p_from, p_to),
           listening_entity_count(p_user, 3::smallint, p_from, p_to),
           min(d.first_played_at), max(d.last_played_at)
      from listening_days d
     where d.user_id = p_user and d.day between p_from and p_to
$$;

-- Current streak: consecutive local days with plays ending today, or yesterday
-- when nothing was played yet today. Longest: the longest run (latest on a tie).
create or replace function listening_streak(p_user integer, p_zone text, p_today date default null)
returns table (current_days integer, current_start date, longest_days integer,
               longest_start date, longest_end date)
language sql stable as $$
    with d as (select day, day - (row_number() over (order by day))::integer as grp
                 from listening_days where user_id = p_user),
         runs as (select min(day) as s, max(day) as e, count(*)::integer as n from d group by grp),
         t as (select coalesce(p_today, (now() at time zone p_zone)::date) as today),
         cur as (select runs.n, runs.s from runs, t where runs.e >= t.today - 1
                  order by runs.e desc limit 1),
         best as (select n, s, e from runs order by n desc, e desc limit 1)
    select coalesce((select n from cur), 0), (select s from cur),
           coalesce((select n from best), 0), (select s from best), (select e from best)
$$;
