-- 008_demo_user.sql: the made-up user that `python -m sync demo` fills.
-- Idempotent: safe to paste into Supabase's SQL editor more than once, after 007.
--
-- `python -m sync demo` stores a year of made-up listening for a user with the Spotify
-- id 'demo' and the status 'demo', through the same writes as a real import and sync.
-- That user has no tokens, and `run` never syncs it (nor does the owner's inbox or
-- doctor count it as a problem): only 'active' and 'needs_reauth' users are synced.
-- `python -m sync users remove demo` deletes it with everything it holds.

alter table user_tokens drop constraint if exists user_tokens_status_check;
alter table user_tokens add constraint user_tokens_status_check
    check (status in ('active', 'needs_reauth', 'removed', 'demo'));

-- Only a removed user, or the demo, may lack a refresh token.
alter table user_tokens drop constraint if exists user_tokens_refresh_token_check;
alter table user_tokens add constraint user_tokens_refresh_token_check
    check (refresh_token is not null or status in ('removed', 'demo'));

insert into schema_migrations (version) values ('008') on conflict do nothing;
