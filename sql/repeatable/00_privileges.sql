-- 00_privileges.sql: who may call the functions that write.
-- Repeatable: the current definitions, applied by `python -m sync migrate` whenever this
-- file's checksum differs from the one recorded in schema_files, after the numbered
-- migrations and before the other repeatable files (docs/schema.md). Safe to run any
-- number of times, and to paste into Supabase's SQL editor after the numbered files.
--
-- Supabase grants EXECUTE on every function in public to its API roles (anon,
-- authenticated). The files after this one call revoke_execute_from_api on each
-- function that inserts, updates or deletes, so that only the owner (the job's
-- connection) and roles it grants to may call them. Read-only functions stay
-- executable by anyone (row level security still applies to what they read).
create or replace procedure revoke_execute_from_api(variadic p_functions regprocedure[])
language plpgsql as $$
declare
    f regprocedure;
    r name;
begin
    foreach f in array p_functions loop
        execute format('revoke execute on routine %s from public', f);
        for r in select rolname from pg_roles where rolname in ('anon', 'authenticated') loop
            execute format('revoke execute on routine %s from %I', f, r);
        end loop;
    end loop;
end $$;

call revoke_execute_from_api('revoke_execute_from_api(regprocedure[])');
