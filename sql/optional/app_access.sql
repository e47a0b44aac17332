-- optional/app_access.sql: your own Supabase app reads the signed-in user's history.
-- Opt-in: `python -m sync migrate` never applies it. Apply it with
-- `python -m sync migrate --with app-access`, or paste it into Supabase's SQL editor
-- after every other file (docs/schema.md). Safe to run any number of times; run it again
-- after pulling a new version. docs/app-access.md says how an app uses it.
--
-- What it adds:
-- - schema app_access (not exposed to the Data API): the table app_access.links, which
--   Spotify user (user_tokens.user_id) each Supabase Auth user (auth.users.id) may read,
--   and the functions and the view behind the my_* views below. Linking is one statement:
--       insert into app_access.links (spotify_user_id, auth_user_id)
--       values ('SPOTIFY_USER_ID', 'AUTH_USER_UUID') on conflict (spotify_user_id)
--       do update set auth_user_id = excluded.auth_user_id;
--   and unlinking: delete from app_access.links where spotify_user_id = 'SPOTIFY_USER_ID';
--   Deleting the Auth user or the Spotify user removes its links too.
-- - in public, one my_<view> per read view (plays, top_tracks, top_artists, top_albums,
--   listening_period_totals, listening_streaks, listening_daily,
--   listening_entities_by_day, listening_heatmap; my_spoken_plays for
--   spoken_plays_view, the podcasts and audiobooks): the same columns, only the rows of the
--   Spotify users linked to auth.uid(). `authenticated` may SELECT them, and nothing else
--   this file creates; `anon` gets nothing (permission denied); nobody may write them.
-- - user_tokens loses every privilege `anon` and `authenticated` had on it (Supabase
--   projects created before 2026-05-30 granted them all on every table, row level
--   security then hid the rows): the tokens are read by the job's own role only.
--
-- Why views that run with their owner's rights instead of row level security policies:
-- the public views are security_invoker and join user_tokens, so policies would need
-- `authenticated` to hold SELECT on user_tokens and on every table under them, which
-- the Data API would then serve directly. The my_* views read the tables as their owner,
-- filtered by auth.uid() inside the view; security_barrier keeps the filter first, so
-- no condition a client adds runs on other users' rows. Supabase's Security Advisor
-- lists the five views of the first kind below as "Security Definer View": that is
-- this deliberate design, the filter is in the view.
-- Two kinds, because functions called in a view run with the rights of whoever queries
-- it: views over tables only (my_plays, my_listening_daily, my_listening_entities_by_day,
-- my_listening_heatmap, my_spoken_plays) are owner's-rights views, so filters and
-- limits reach the indexes (my_plays adds the artists outside its barrier,
-- app_access.plays, so a page of plays looks up the artists of that page only); views
-- over the listening_* functions (my_top_*, my_listening_period_totals,
-- my_listening_streaks) read a security definer function of app_access that returns the
-- linked users' rows of the public view (under a thousand rows per user).
-- The functions' bodies are text, so they do not pin the public views: the repeatable
-- files can drop and recreate those; a column they rename breaks the my_* view until
-- this file follows (tests/db/test_app_access.py compares the columns of each pair).

do $$
begin
    if to_regclass('auth.users') is null or to_regprocedure('auth.uid()') is null then
        raise exception 'app-access needs Supabase Auth (auth.users and auth.uid()): apply it to a Supabase project''s database';
    end if;
    if (select count(*) from pg_roles where rolname in ('anon', 'authenticated')) < 2 then
        raise exception 'app-access needs Supabase''s roles anon and authenticated: apply it to a Supabase project''s database';
    end if;
    if to_regclass('public.user_tokens') is null or to_regclass('public.listening_heatmap') is null
       or to_regclass('public.spoken_plays') is null then
        raise exception 'app-access comes after the schema: run python -m sync migrate (or paste every other file) first';
    end if;
end $$;

create schema if not exists app_access;
revoke all on schema app_access from public, anon, authenticated;

create table if not exists app_access.links (
    spotify_user_id text primary key
                    references public.user_tokens (user_id) on delete cascade,
    auth_user_id    uuid not null references auth.users (id) on delete cascade,
    linked_at       timestamptz not null default now()
);
create index if not exists links_auth_user_idx on app_access.links (auth_user_id);
alter table app_access.links enable row level security;
revoke all on table app_access.links from public, anon, authenticated;

revoke all on table public.user_tokens from anon, authenticated;

-- Recreated on every run (grants included): views first, they use the functions.
drop view if exists public.my_plays, app_access.plays, public.my_listening_daily,
    public.my_listening_entities_by_day, public.my_listening_heatmap, public.my_top_tracks,
    public.my_top_artists, public.my_top_albums, public.my_listening_period_totals,
    public.my_listening_streaks, public.my_spoken_plays;
drop function if exists app_access.linked(), app_access.top_tracks(), app_access.top_artists(),
    app_access.top_albums(), app_access.period_totals(), app_access.streaks();

-- The Spotify users the signed-in Auth user may read (none without a signed-in user).
create function app_access.linked() returns text[]
language sql stable security definer set search_path = public, pg_temp as $$
    select array(select l.spotify_user_id from app_access.links l
                  where l.auth_user_id = auth.uid())
$$;

-- Views over tables: the bodies of repeatable/50_views.sql, filtered by the link.
-- my_plays in two layers: the barrier holds the rows and their cheap columns, the
-- artists (a subquery per play) are added outside it, so that a sort and limit of the
-- caller's runs before them (a barrier view is planned on its own, whole).
create view app_access.plays with (security_barrier = true) as
select u.user_id     as spotify_user_id,
       h.played_at,
       t.name        as track,
       t.id          as track_id,
       al.name       as album,
       h.ms_played,
       t.duration_ms,
       t.uri         as track_uri,
       h.source
  from public.listening_history h
  join public.user_tokens u on u.id = h.user_id
  join public.tracks t on t.id = h.track_id
  left join public.albums al on al.id = t.album_id
 where u.user_id = any(app_access.linked());

create view public.my_plays as
select p.spotify_user_id,
       p.played_at,
       p.track,
       (select string_agg(a.name, ', ' order by ta.position)
          from public.track_artists ta join public.artists a on a.id = ta.artist_id
         where ta.track_id = p.track_id) as artists,
       p.album,
       p.ms_played,
       p.duration_ms,
       p.track_uri,
       p.source
  from app_access.plays p;

create view public.my_listening_daily with (security_barrier = true) as
select u.user_id as spotify_user_id, d.day, d.plays, d.listening_ms, d.estimated_ms,
       d.distinct_tracks, d.distinct_artists, d.first_played_at, d.last_played_at
  from public.listening_days d join public.user_tokens u on u.id = d.user_id
 where u.user_id = any(app_access.linked());

create view public.my_listening_entities_by_day with (security_barrier = true) as
select u.user_id as spotify_user_id, d.day,
       case d.kind when 1 then 'track' when 2 then 'artist' else 'album' end as kind,
       x.entity_id, x.plays, x.listening_ms
  from public.listening_day_entities d
  join public.user_tokens u on u.id = d.user_id
 cross join lateral unnest(d.entity_ids, d.plays, d.listening_ms) as x(entity_id, plays, listening_ms)
 where u.user_id = any(app_access.linked());

create view public.my_listening_heatmap with (security_barrier = true) as
select u.user_id as spotify_user_id, h.weekday, h.hour, h.plays, h.listening_ms
  from public.listening_hour_weekday h join public.user_tokens u on u.id = h.user_id
 where u.user_id = any(app_access.linked());

-- Podcast episodes and audiobook chapters (public.spoken_plays_view, filtered).
create view public.my_spoken_plays with (security_barrier = true) as
select u.user_id as spotify_user_id,
       p.played_at,
       case i.kind when 1 then 'episode' else 'chapter' end as kind,
       i.show,
       i.name,
       i.uri,
       p.ms_played,
       p.source
  from public.spoken_plays p
  join public.user_tokens u on u.id = p.user_id
  join public.spoken_items i on i.id = p.item_id
 where u.user_id = any(app_access.linked());

-- Views over the listening_* functions: the linked users' rows of the public view, read
-- by a security definer function (the listening_* functions then run as its owner).
create function app_access.top_tracks()
returns table (spotify_user_id text, period text, first_day date, last_day date, rank integer,
               track text, artists text, album text, plays bigint, listening_ms bigint,
               track_uri text, track_id integer)
language sql stable security definer set search_path = public, pg_temp as $$
    select v.spotify_user_id, v.period, v.first_day, v.last_day, v.rank, v.track, v.artists,
           v.album, v.plays, v.listening_ms, v.track_uri, v.track_id
      from public.top_tracks v where v.spotify_user_id = any(app_access.linked())
$$;

create function app_access.top_artists()
returns table (spotify_user_id text, period text, first_day date, last_day date, rank integer,
               artist text, plays bigint, listening_ms bigint, artist_uri text,
               artist_id integer)
language sql stable security definer set search_path = public, pg_temp as $$
    select v.spotify_user_id, v.period, v.first_day, v.last_day, v.rank, v.artist, v.plays,
           v.listening_ms, v.artist_uri, v.artist_id
      from public.top_artists v where v.spotify_user_id = any(app_access.linked())
$$;

create function app_access.top_albums()
returns table (spotify_user_id text, period text, first_day date, last_day date, rank integer,
               album text, plays bigint, listening_ms bigint, album_uri text, album_id integer)
language sql stable security definer set search_path = public, pg_temp as $$
    select v.spotify_user_id, v.period, v.first_day, v.last_day, v.rank, v.album, v.plays,
           v.listening_ms, v.album_uri, v.album_id
      from public.top_albums v where v.spotify_user_id = any(app_access.linked())
$$;

create function app_access.period_totals()
returns table (spotify_user_id text, period text, first_day date, last_day date, plays bigint,
               listening_ms bigint, estimated_ms bigint, days_listened integer,
               distinct_tracks integer, distinct_artists integer, distinct_albums integer,
               first_played_at timestamptz, last_played_at timestamptz)
language sql stable security definer set search_path = public, pg_temp as $$
    select v.spotify_user_id, v.period, v.first_day, v.last_day, v.plays, v.listening_ms,
           v.estimated_ms, v.days_listened, v.distinct_tracks, v.distinct_artists,
           v.distinct_albums, v.first_played_at, v.last_played_at
      from public.listening_period_totals v where v.spotify_user_id = any(app_access.linked())
$$;

create function app_access.streaks()
returns table (spotify_user_id text, time_zone text, current_days integer, current_start date,
               longest_days integer, longest_start date, longest_end date)
language sql stable security definer set search_path = public, pg_temp as $$
    select v.spotify_user_id, v.time_zone, v.current_days, v.current_start, v.longest_days,
           v.longest_start, v.longest_end
      from public.listening_streaks v where v.spotify_user_id = any(app_access.linked())
$$;

create view public.my_top_tracks with (security_invoker = true) as
    select * from app_access.top_tracks();
create view public.my_top_artists with (security_invoker = true) as
    select * from app_access.top_artists();
create view public.my_top_albums with (security_invoker = true) as
    select * from app_access.top_albums();
create view public.my_listening_period_totals with (security_invoker = true) as
    select * from app_access.period_totals();
create view public.my_listening_streaks with (security_invoker = true) as
    select * from app_access.streaks();

-- Privileges: authenticated may read the my_* views and call what they call; nothing else.
revoke all on function app_access.linked(), app_access.top_tracks(), app_access.top_artists(),
    app_access.top_albums(), app_access.period_totals(), app_access.streaks()
    from public, anon, authenticated;
grant execute on function app_access.linked(), app_access.top_tracks(),
    app_access.top_artists(), app_access.top_albums(), app_access.period_totals(),
    app_access.streaks() to authenticated;
revoke all on table public.my_plays, app_access.plays, public.my_listening_daily,
    public.my_listening_entities_by_day, public.my_listening_heatmap, public.my_top_tracks,
    public.my_top_artists, public.my_top_albums, public.my_listening_period_totals,
    public.my_listening_streaks, public.my_spoken_plays from public, anon, authenticated;
grant select on table public.my_plays, public.my_listening_daily,
    public.my_listening_entities_by_day, public.my_listening_heatmap, public.my_top_tracks,
    public.my_top_artists, public.my_top_albums, public.my_listening_period_totals,
    public.my_listening_streaks, public.my_spoken_plays to authenticated;
