-- 007_owner_notices.sql: which GitHub issue stands for which problem that needs the owner.
-- Idempotent: safe to paste into Supabase's SQL editor more than once, after 006.
--
-- The job tells the owner about a problem (a sign-in ending, a refused user, a lapsed
-- Premium, ...) by opening an issue in the repository, updating it while the problem
-- lasts and closing it when the problem is over (sync/notify/, docs/operations.md).
-- This table is the source of truth for that: one row per open problem, keyed by the
-- problem and its subject ('app' or 'user-<key>'). A run first claims the row
-- (claimed_until, compare-and-set), then calls GitHub, then records the issue number,
-- so two overlapping runs never open two issues for one problem, and a call that failed
-- is tried again by the next run. attempts > 1 tells that an earlier claim may have
-- created the issue without recording it: the next one looks for it before creating.

create table if not exists owner_notices (
    problem       text not null
                  check (problem in ('sign_in', 'refused', 'invalid_client', 'premium_lapsed',
                                     'gaps', 'held', 'schedule')),
    subject       text not null,                          -- 'app', or 'user-<user_tokens.id>'
    issue_number  integer,                                -- null until the issue exists
    body_hash     text,                                   -- sha256 of the text last written
    claimed_until timestamptz,                            -- a run is calling GitHub for this row
    attempts      integer not null default 0,
    opened_at     timestamptz not null default now(),
    updated_at    timestamptz not null default now(),
    primary key (problem, subject)
);

alter table owner_notices enable row level security;

insert into schema_migrations (version) values ('007') on conflict do nothing;
