-- 004_user_removed.sql: a user can be removed while their listening history stays.
--
-- `python -m sync users remove USER --keep-history` keeps the plays, which reference
-- user_tokens.id, so the row stays: it gets status 'removed', its tokens are erased
-- (refresh_token becomes null) and `run` no longer syncs it. `python -m sync login`
-- as the same Spotify account makes it 'active' again, history intact.
-- Without --keep-history the row is deleted and everything of that user goes with it
-- (listening_history, sync_run_users and the analytics tables cascade).
-- Idempotent: safe to paste into Supabase's SQL editor more than once.

alter table user_tokens drop constraint if exists user_tokens_status_check;
alter table user_tokens add constraint user_tokens_status_check
    check (status in ('active', 'needs_reauth', 'removed'));

-- Only a removed user may lack a refresh token.
alter table user_tokens alter column refresh_token drop not null;
alter table user_tokens drop constraint if exists user_tokens_refresh_token_check;
alter table user_tokens add constraint user_tokens_refresh_token_check
    check (refresh_token is not null or status = 'removed');

insert into schema_migrations (version) values ('004') on conflict do nothing;
