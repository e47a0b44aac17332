-- 005_schema_files.sql: what `python -m sync migrate` records about every file of sql/.
-- Idempotent: safe to paste into Supabase's SQL editor more than once, after 004.
--
-- From here on, numbered migrations (sql/NNN_name.sql) are append-only once on main,
-- and functions and views live in the repeatable files of sql/repeatable/, applied
-- whenever they change (docs/schema.md). migrate records each file it applies here,
-- with the sha256 of its text: a numbered file whose text changed after it was applied
-- gets a warning, a repeatable file whose text changed is applied again.
-- schema_migrations stays: pasted numbered files record their version there, and so
-- did every migrate before this file.
--
-- Tables: databases created at any earlier commit of main and migrated since have the
-- same tables, columns, indexes and constraints as a fresh install (checked by
-- tests/test_schema_upgrade.py), so nothing here reconciles them. Only functions
-- differed (001-004 were edited after they landed): sql/repeatable/ now defines them.

create table if not exists schema_files (
    name       text primary key,                      -- path under sql/, e.g. repeatable/10_history.sql
    checksum   text not null,                         -- sha256 of the file's text (hex)
    applied_at timestamptz not null default now()
);

alter table schema_files enable row level security;

insert into schema_migrations (version) values ('005') on conflict do nothing;
