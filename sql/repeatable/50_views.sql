-- 50_views.sql: the ready-made views, by Spotify user id.
-- Repeatable: the current definitions, applied by `python -m sync migrate` whenever this
-- file's checksum differs from the one recorded in schema_files, after the numbered
-- migrations and the repeatable files before it (docs/schema.md). Safe to run any
-- number of times, and to paste into Supabase's SQL editor after the numbered files.
-- Edit functions here, not in the numbered migrations (those are append-only).
--
-- Every view is created `with (security_invoker = true)` (PostgreSQL 15 or newer): row
-- level security stays in force for whoever queries it (Supabase's API keys).
-- Views come last: they use the functions of the files before this one. `create or
-- replace view` can only add columns at the end; to change or remove a column, add
-- `drop view if exists <name>;` before its definition (views that use it first).

-- A readable view of the history, by Spotify user id. security_invoker keeps
-- row level security in force for whoever queries it (Supabase API keys).
create or replace view plays with (security_invoker = true) as
select u.user_id                   as spotify_user_id,
       h.played_at,
       t.name                      as track,
       (select string_agg(a.name, ', ' order by ta.position)
          from track_artists ta join artists a on a.id = ta.artist_id
         where ta.track_id = t.id) as artists,
       al.name                     as album,
       h.ms_played,
       t.duration_ms,
       t.uri                       as track_uri,
       h.source
  from listening_history h
  join user_tokens u on u.id = h.user_id
  join tracks t on t.id = h.track_id
  left join albums al on al.id = t.album_id;

-- Podcast episodes and audiobook chapters (sql/009_spoken_plays.sql), apart from music
-- as their tables are: the counterpart of `plays` (the table has the name spoken_plays).
-- played_at is the end of the play, as in `plays`; kind 'episode' or 'chapter'.
create or replace view spoken_plays_view with (security_invoker = true) as
select u.user_id                   as spotify_user_id,
       p.played_at,
       case i.kind when 1 then 'episode' else 'chapter' end as kind,
       i.show,
       i.name,
       i.uri,
       p.ms_played,
       p.source
  from spoken_plays p
  join user_tokens u on u.id = p.user_id
  join spoken_items i on i.id = p.item_id;

-- ---------------------------------------------------------------------------
-- Ready-made views, by Spotify user id. security_invoker keeps row level
-- security in force for whoever queries them. Filter on spotify_user_id and
-- period: e.g. select * from top_artists where spotify_user_id = 'me' and period = '4w';
-- (top 50 per period; listening_top() gives any number, any days).
-- Kinds: 1 track, 2 artist, 3 album, as sync/analytics/listening.py's Kind
-- (tests/analytics/test_kinds.py compares).

create or replace view listening_period_totals with (security_invoker = true) as
select u.user_id as spotify_user_id, p.period, p.first_day, p.last_day, s.*
  from user_tokens u
 cross join lateral listening_periods(u.id, u.time_zone) p
 cross join lateral listening_summary(u.id, p.first_day, p.last_day) s;

create or replace view top_tracks with (security_invoker = true) as
select u.user_id as spotify_user_id, p.period, p.first_day, p.last_day, x.rank,
       tr.name as track,
       (select string_agg(a.name, ', ' order by ta.position)
          from track_artists ta join artists a on a.id = ta.artist_id
         where ta.track_id = tr.id) as artists,
       al.name as album, x.plays, x.listening_ms, tr.uri as track_uri, tr.id as track_id
  from user_tokens u
 cross join lateral listening_periods(u.id, u.time_zone) p
 cross join lateral listening_top(u.id, 1::smallint, p.first_day, p.last_day, 50) x
  join tracks tr on tr.id = x.entity_id
  left join albums al on al.id = tr.album_id;

create or replace view top_artists with (security_invoker = true) as
select u.user_id as spotify_user_id, p.period, p.first_day, p.last_day, x.rank,
       ar.name as artist, x.plays, x.listening_ms, ar.uri as artist_uri, ar.id as artist_id
  from user_tokens u
 cross join lateral listening_periods(u.id, u.time_zone) p
 cross join lateral listening_top(u.id, 2::smallint, p.first_day, p.last_day, 50) x
  join artists ar on ar.id = x.entity_id;

create or replace view top_albums with (security_invoker = true) as
select u.user_id as spotify_user_id, p.period, p.first_day, p.last_day, x.rank,
       al.name as album, x.plays, x.listening_ms, al.uri as album_uri, al.id as album_id
  from user_tokens u
 cross join lateral listening_periods(u.id, u.time_zone) p
 cross join lateral listening_top(u.id, 3::smallint, p.first_day, p.last_day, 50) x
  join albums al on al.id = x.entity_id;

create or replace view listening_streaks with (security_invoker = true) as
select u.user_id as spotify_user_id, u.time_zone, s.*
  from user_tokens u
 cross join lateral listening_streak(u.id, u.time_zone) s;

create or replace view listening_daily with (security_invoker = true) as
select u.user_id as spotify_user_id, d.day, d.plays, d.listening_ms, d.estimated_ms,
       d.distinct_tracks, d.distinct_artists, d.first_played_at, d.last_played_at
  from listening_days d join user_tokens u on u.id = d.user_id;

create or replace view listening_entities_by_day with (security_invoker = true) as
select u.user_id as spotify_user_id, d.day,
       case d.kind when 1 then 'track' when 2 then 'artist' else 'album' end as kind,
       x.entity_id, x.plays, x.listening_ms
  from listening_day_entities d
  join user_tokens u on u.id = d.user_id
 cross join lateral unnest(d.entity_ids, d.plays, d.listening_ms) as x(entity_id, plays, listening_ms);

create or replace view listening_heatmap with (security_invoker = true) as
select u.user_id as spotify_user_id, h.weekday, h.hour, h.plays, h.listening_ms
  from listening_hour_weekday h join user_tokens u on u.id = h.user_id;

