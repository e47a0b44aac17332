-- 006_run_leases.sql: who may sync a user right now, and which runs are still alive.
--
-- user_tokens.lease_run / lease_until: a run (or an import) claims a user with one UPDATE
-- before it reads the user's tokens, and releases the claim in its final write. Unlike a
-- session advisory lock, a claim works through any connection pooler and expires by
-- itself when the run holding it dies.
-- sync_runs.alive_until: pushed forward by every user a run finishes. A row still
-- 'running' after that time belongs to a run that was killed; the next run closes it
-- with the new status 'killed'.
-- sync_run_users.status 'refused': Spotify keeps answering 403 for this user (not in the
-- app's User Management list): reported as a warning, not a failure, until it succeeds.
-- Idempotent: safe to paste into Supabase's SQL editor more than once.

alter table user_tokens add column if not exists lease_run bigint;
alter table user_tokens add column if not exists lease_until timestamptz;

alter table sync_runs add column if not exists alive_until timestamptz;
alter table sync_runs drop constraint if exists sync_runs_status_check;
alter table sync_runs add constraint sync_runs_status_check
    check (status in ('running', 'ok', 'failed', 'interrupted', 'killed'));

alter table sync_run_users drop constraint if exists sync_run_users_status_check;
alter table sync_run_users add constraint sync_run_users_status_check
    check (status in ('ok', 'needs_reauth', 'failed', 'skipped', 'refused'));

insert into schema_migrations (version) values ('006') on conflict do nothing;
