-- 009_spoken_plays.sql: podcast episodes and audiobook chapters from the data export,
-- kept apart from music (docs/schema.md, "spoken_items and spoken_plays").
-- Idempotent: safe to paste into Supabase's SQL editor more than once, after 008.
--
-- Their own tables rather than a kind beside music plays: every analytics table, the
-- `plays` view and the sync's matching read listening_history as music, so episodes
-- there would move music figures (and they have no artist for the same-song rule).
-- An item is known by its URI, or by kind, show (book) and name together when the
-- export has no URI (account data): never by its name alone.

create table if not exists spoken_items (
    id integer generated always as identity primary key,
    kind smallint not null check (kind in (1, 2)),  -- 1 podcast episode, 2 audiobook chapter
    uri text,  -- spotify:episode:..., spotify:chapter:...; null from account data
    show text,  -- the show, or the book
    name text,  -- the episode, or the chapter
    check (uri is not null or name is not null)
);
create unique index if not exists spoken_items_uri_key on spoken_items (uri)
    where uri is not null;
-- A URI-less item by its names; items with a URI are found by these names too, but
-- may share them (two URIs, same titles), so the index covers only URI-less ones.
create unique index if not exists spoken_items_name_key
    on spoken_items (kind, lower(coalesce(show, '')), lower(name)) where uri is null;

-- One row per play, like listening_history: the end time (UTC) as the export states it
-- (a second distinct play of one item in the same account-data minute 1 ms later).
-- The key makes re-imports idempotent; two items may end in the same second.
create table if not exists spoken_plays (
    played_at timestamptz not null,
    user_id integer not null references user_tokens (id) on delete cascade,
    item_id integer not null references spoken_items (id),
    ms_played integer not null,
    source smallint not null check (source in (1, 2)),  -- 1 extended history, 2 account data
    primary key (user_id, played_at, item_id)
);

alter table spoken_items enable row level security;
alter table spoken_plays enable row level security;

insert into schema_migrations (version) values ('009') on conflict do nothing;
