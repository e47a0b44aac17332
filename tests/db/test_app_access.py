"""sql/optional/app_access.sql: a signed-in user of the owner's Supabase app reads only
their own plays and analytics, through the my_* views, and nothing else.

Supabase is recreated as it defines itself (supabase/postgres init scripts, supabase/auth
migrations): the roles anon, authenticated, service_role and authenticator, the schema
auth with auth.users, and auth.uid() reading the `sub` of request.jwt.claims, which is
what PostgREST sets for each request before `set local role` to the JWT's role. Every
check runs twice: on a project created before 2026-05-30 ("legacy": anon and
authenticated hold every privilege on every table of public, now and by default, and
row level security hides the rows), and on one created after ("2026": nothing is granted
unless a file grants it).

The access matrix this file proves (my_* = every view the opt-in file creates; "tables":
the history, catalogue, analytics and spoken (podcast, audiobook) tables; "views": plays,
spoken_plays_view, top_*, listening_*):

| who                           | my_* views        | user_tokens, links, views | tables        |
|-------------------------------|-------------------|---------------------------|---------------|
| authenticated, linked to A    | A's rows, all     | permission denied         | see below     |
| authenticated, linked to none | 0 rows            | permission denied         | see below     |
| anon (also with A's sub)      | permission denied | permission denied         | see below     |
| anyone: insert/update/delete  | refused (1)       | permission denied         | see below     |

(1) no INSERT/UPDATE/DELETE privilege; Postgres names the first reason it meets:
"permission denied" or "cannot delete from view" (a view of joins is not updatable).
Tables: permission denied (2026); legacy: 0 rows read, writes refused by row level
security or touching 0 rows, as before the file. The views are denied in both because
they join user_tokens, whose grants the file takes back.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from sync.db import schema
from sync.store import aggregates, spoken
from sync.store.rows import AlbumRow, ArtistRow, Play, TrackRow
from sync.store.sources import SOURCE_ACCOUNT, SOURCE_EXTENDED
from tests.conftest import add_user
from tests.support.store import store_plays

A_UUID = "a0000000-0000-4000-8000-00000000000a"
B_UUID = "b0000000-0000-4000-8000-00000000000b"
C_UUID = "c0000000-0000-4000-8000-00000000000c"  # signed in, linked to nobody

# Each view of the opt-in file and the public read view it mirrors.
VIEWS = {
    "my_plays": "plays",
    "my_top_tracks": "top_tracks",
    "my_top_artists": "top_artists",
    "my_top_albums": "top_albums",
    "my_listening_period_totals": "listening_period_totals",
    "my_listening_streaks": "listening_streaks",
    "my_listening_daily": "listening_daily",
    "my_listening_entities_by_day": "listening_entities_by_day",
    "my_listening_heatmap": "listening_heatmap",
    "my_spoken_plays": "spoken_plays_view",
}
TABLES = ["listening_history", "tracks", "artists", "albums", "track_artists",
          "listening_days", "listening_day_entities", "listening_entity_totals",
          "listening_hour_weekday", "sync_runs", "spoken_items", "spoken_plays"]  # fmt: skip

# Supabase's roles, created once per server (roles are cluster-wide and the tests of
# parallel sessions share the server): a concurrent create or grant is not an error.
SUPABASE_ROLES = """
do $$
declare
    r text;
begin
    foreach r in array array['anon', 'authenticated', 'service_role', 'authenticator'] loop
        begin
            execute format('create role %I nologin noinherit', r);
        exception when duplicate_object or unique_violation then null;
        end;
    end loop;
    begin
        alter role service_role bypassrls;
        grant anon, authenticated, service_role to authenticator;
    exception when duplicate_object or unique_violation or internal_error then null;
    end;
end $$;
"""
# Per database: Supabase Auth's schema, and auth.uid() as supabase/auth defines it.
SUPABASE_AUTH = """
create schema if not exists auth;
create table if not exists auth.users (id uuid primary key, email text);
create or replace function auth.uid() returns uuid language sql stable as $$
  select nullif(
    coalesce(current_setting('request.jwt.claim.sub', true),
             (current_setting('request.jwt.claims', true)::jsonb ->> 'sub')),
    '')::uuid
$$;
grant usage on schema auth to anon, authenticated, service_role;
grant usage on schema public to anon, authenticated, service_role;
"""
# A project created before the 2026 change: every table of public granted to the API
# roles when it was created, and whatever is created later too. (Functions were granted
# as well, and the files that write took that back: revoke_execute_from_api.)
LEGACY_GRANTS = """
grant all on all tables in schema public to anon, authenticated, service_role;
alter default privileges in schema public grant all on tables to anon, authenticated, service_role;
alter default privileges in schema public grant all on functions
    to anon, authenticated, service_role;
"""

ARTIST_1 = ArtistRow("spotify:artist:r1", "r1", "Rhea")
ARTIST_2 = ArtistRow("spotify:artist:r2", "r2", "Oslo")
ARTIST_3 = ArtistRow("spotify:artist:r3", "r3", "Zeno")  # bob's only
ALBUM_1 = AlbumRow("spotify:album:l1", "l1", "First", "album", "2020", None)
ALBUM_2 = AlbumRow("spotify:album:l2", "l2", "Second", "album", "2021", None)


def track(n: int, artist: ArtistRow, album: AlbumRow) -> TrackRow:
    return TrackRow(f"spotify:track:t{n}", f"t{n}", f"Song {n}", 180_000, False, False, None,
                    1, 1, album, (artist,))  # fmt: skip


def supabase(conn: psycopg.Connection, *, legacy: bool) -> None:
    conn.execute(SUPABASE_ROLES)
    conn.execute(SUPABASE_AUTH)
    if legacy:
        conn.execute(LEGACY_GRANTS)


def listen(
    conn: psycopg.Connection,
    user_id: str,
    plays: list[tuple[datetime, TrackRow]],
    spoken_plays: list[tuple[int, str | None, str, str, datetime]] = (),
) -> int:
    """The user's music plays as a sync stores them, and their podcast and audiobook plays
    (kind, uri, show, name, end) as an import does (extended history if with a URI)."""
    key = add_user(conn, user_id, f"refresh-{user_id}-secret")
    conn.execute(
        "update user_tokens set access_token = %s, time_zone = 'Europe/Berlin' where id = %s",
        (f"access-{user_id}-secret", key),
    )
    with conn.transaction():
        new = store_plays(conn, key, [Play(t, tr) for t, tr in plays])
        aggregates.refresh_days(conn, key, new)
        for kind, uri, show, name, at in spoken_plays:
            row = (kind, uri, show, name, at.isoformat(), 1_800_000)
            source = SOURCE_EXTENDED if uri else SOURCE_ACCOUNT
            spoken.store_plays(conn, key, [row], source)
    return key


def link(conn: psycopg.Connection, spotify_user_id: str, auth_user_id: str) -> None:
    """The one statement docs/app-access.md gives the owner."""
    conn.execute(
        "insert into app_access.links (spotify_user_id, auth_user_id) values (%s, %s) "
        "on conflict (spotify_user_id) do update set auth_user_id = excluded.auth_user_id",
        (spotify_user_id, auth_user_id),
    )


@pytest.fixture(params=["legacy", "2026"])
def world(request, db_url) -> Iterator[psycopg.Connection]:
    """Three listeners: alice (linked to A), bob (linked to B), carol (linked to nobody)."""
    now = datetime.now(UTC).replace(microsecond=0)
    with psycopg.connect(db_url, autocommit=True) as conn:
        supabase(conn, legacy=request.param == "legacy")
        conn.legacy = request.param == "legacy"  # type: ignore[attr-defined]
        schema.apply_optional(conn, "app-access")
        t1, t2, t3, t4 = (
            track(1, ARTIST_1, ALBUM_1),
            track(2, ARTIST_2, ALBUM_2),
            track(3, ARTIST_2, ALBUM_1),
            track(4, ARTIST_3, ALBUM_2),  # bob's only
        )
        listen(
            conn,
            "alice",
            [
                (now - timedelta(days=2, hours=1), t1),
                (now - timedelta(days=2), t1),
                (now - timedelta(hours=3), t2),
                (now - timedelta(days=400), t3),
            ],
            [
                (1, "spotify:episode:e1", "Tech Talk", "Ep 1", now - timedelta(days=3)),
                (2, None, "Dune", "Chapter 3", now - timedelta(hours=6)),  # account data
            ],
        )
        listen(conn, "bob", [(now - timedelta(days=1), t2), (now - timedelta(hours=5), t4)],
               [(1, "spotify:episode:e2", "Tech Talk", "Ep 2", now - timedelta(days=1)),
                (2, None, "Emma", "Chapter 3", now - timedelta(hours=4))])  # fmt: skip
        carols_episode = (1, "spotify:episode:e1", "Tech Talk", "Ep 1", now - timedelta(hours=1))
        listen(conn, "carol", [(now - timedelta(hours=2), t1)], [carols_episode])
        conn.execute(
            "insert into auth.users (id, email) values (%s, 'a@example.org'), "
            "(%s, 'b@example.org'), (%s, 'c@example.org')",
            (A_UUID, B_UUID, C_UUID),
        )
        link(conn, "alice", A_UUID)
        link(conn, "bob", B_UUID)
        yield conn


@contextmanager
def api(conn: psycopg.Connection, role: str, sub: str | None = None) -> Iterator[None]:
    """What PostgREST does for one request: the JWT's claims, then its role, as
    authenticator does it (`set local role`), in a transaction that is rolled back."""
    claims = json.dumps({"role": role, **({"sub": sub} if sub else {})})
    with conn.transaction(force_rollback=True):
        conn.execute("select set_config('request.jwt.claims', %s, true)", (claims,))
        conn.execute("set local role authenticator")
        conn.execute(f"set local role {role}")
        yield


def rows(conn: psycopg.Connection, sql: str, params=()) -> Counter:
    """The result as a multiset (arrays as tuples, so that rows can be counted)."""
    freeze = [
        tuple(tuple(v) if isinstance(v, list) else v for v in r) for r in conn.execute(sql, params)
    ]
    return Counter(freeze)


def refused(conn: psycopg.Connection, sql: str) -> str | None:
    """'denied' (permission denied), 'rls' (row level security refused the row), 'not
    updatable' (a view of joins or functions), 'no rows' (it ran and touched nothing),
    or None (it ran and touched rows); in a savepoint, so the caller's transaction goes on."""
    try:
        with conn.transaction():
            cur = conn.execute(sql)
            return None if cur.rowcount else "no rows"
    except psycopg.errors.InsufficientPrivilege as exc:
        return "rls" if "row-level security" in str(exc) else "denied"
    except psycopg.errors.ObjectNotInPrerequisiteState:
        return "not updatable"


# -- what each one sees ---------------------------------------------------------------
@pytest.mark.parametrize("who", [("alice", A_UUID), ("bob", B_UUID)])
def test_a_signed_in_user_sees_exactly_their_own_rows_in_every_view(world, who):
    spotify_id, sub = who
    conn = world
    for mine, public in VIEWS.items():
        with conn.transaction(force_rollback=True):  # one now() for both reads
            want = rows(conn, f"select * from {public} where spotify_user_id = %s", (spotify_id,))
            conn.execute("select set_config('request.jwt.claims', %s, true)",
                         (json.dumps({"role": "authenticated", "sub": sub}),))  # fmt: skip
            conn.execute("set local role authenticated")
            got = rows(conn, f"select * from {mine}")
        assert want, f"{public} has no rows for {spotify_id}: the fixture proves nothing"
        assert got == want, mine


def test_the_other_users_rows_are_not_there(world):
    with api(world, "authenticated", A_UUID):
        for mine in VIEWS:
            owners = {r[0] for r in world.execute(f"select spotify_user_id from {mine}")}
            assert owners == {"alice"}, mine
        assert world.execute("select count(*) from my_plays").fetchone() == (4,)


def test_podcasts_and_audiobooks_come_with_show_book_episode_chapter_and_uri(world):
    """my_spoken_plays (as spoken_plays_view): bob's "Chapter 3" of another book is not
    alice's, though the names are the same."""
    with api(world, "authenticated", A_UUID):
        got = world.execute(
            "select kind, show, name, uri, ms_played, source from my_spoken_plays "
            "order by played_at"
        ).fetchall()
    assert got == [
        ("episode", "Tech Talk", "Ep 1", "spotify:episode:e1", 1_800_000, SOURCE_EXTENDED),
        ("chapter", "Dune", "Chapter 3", None, 1_800_000, SOURCE_ACCOUNT),
    ]


def test_a_user_linked_to_nobody_or_not_signed_in_sees_no_rows(world):
    for sub in (C_UUID, None):
        with api(world, "authenticated", sub):
            for mine in VIEWS:
                assert world.execute(f"select count(*) from {mine}").fetchone() == (0,), mine


@pytest.mark.parametrize("sub", [None, A_UUID])
def test_anon_is_refused_every_view_and_table(world, sub):
    """anon: permission denied on every my_* view, user_tokens, the links and the public
    views; on the tables zero rows (legacy grants, row level security) or permission
    denied (2026)."""
    for relation in [*VIEWS, "user_tokens", "app_access.links"]:
        assert not world.execute(
            "select has_table_privilege('anon', %s, 'select')", (relation,)
        ).fetchone()[0], relation
    for relation in [*VIEWS, "user_tokens", "app_access.links", *VIEWS.values()]:
        with api(world, "anon", sub):
            assert refused(world, f"select * from {relation}") == "denied", relation
    for relation in TABLES:
        with api(world, "anon", sub):
            if world.legacy:
                assert world.execute(f"select count(*) from {relation}").fetchone() == (0,)
            else:
                assert refused(world, f"select * from {relation}") == "denied", relation


def test_authenticated_reads_no_table_directly(world):
    with api(world, "authenticated", A_UUID):
        for relation in ("user_tokens", "app_access.links", *VIEWS.values()):
            assert refused(world, f"select * from {relation}") == "denied", relation
        for relation in TABLES:
            if world.legacy:
                assert world.execute(f"select count(*) from {relation}").fetchone() == (0,)
            else:
                assert refused(world, f"select * from {relation}") == "denied", relation


def test_nobody_reads_the_tokens(world):
    """The legacy grants gave anon and authenticated SELECT on user_tokens; the file takes
    it away (and the 2026 default never gave it)."""
    for role, sub in (("anon", None), ("authenticated", A_UUID)):
        assert not world.execute(
            "select has_table_privilege(%s, 'user_tokens', 'select')", (role,)
        ).fetchone()[0]
        for column in ("refresh_token", "access_token", "user_id"):
            with api(world, role, sub):
                assert refused(world, f"select {column} from user_tokens") == "denied", column
    with api(world, "authenticated", A_UUID):
        text = " ".join(str(r) for mine in VIEWS for r in world.execute(f"select * from {mine}"))
    assert "secret" not in text and "alice" in text


def test_nobody_writes_through_the_api_roles(world):
    before = {t: rows(world, f"select * from {t}") for t in [*TABLES, "user_tokens",
                                                             "app_access.links"]}  # fmt: skip
    writes = [
        *(f"delete from {v}" for v in VIEWS),
        *(f"update {v} set spotify_user_id = 'x'" for v in VIEWS),
        "insert into my_plays (spotify_user_id) values ('alice')",
        "insert into listening_history (user_id, played_at, track_id) "
        "select user_id, now(), track_id from listening_history limit 1",
        "update listening_history set ms_played = 1",
        "delete from listening_history",
        "insert into spoken_plays select * from spoken_plays limit 1",
        "update spoken_items set name = 'x'",
        "delete from spoken_plays",
        "insert into user_tokens (user_id, refresh_token) values ('eve', 'x')",
        "update user_tokens set refresh_token = 'x'",
        "delete from user_tokens",
        f"insert into app_access.links values ('carol', '{C_UUID}')",
        "update app_access.links set auth_user_id = auth.uid()",
        "delete from app_access.links",
        "select analytics_rebuild(1)",
    ]
    for role, sub in (("anon", None), ("authenticated", A_UUID), ("authenticated", C_UUID)):
        for sql in writes:
            with api(world, role, sub):
                outcome = refused(world, sql)
            if " my_" in sql:
                allowed = {"denied", "not updatable"}
            elif world.legacy and not re.search(r"user_tokens|app_access|analytics_", sql):
                allowed = {"rls", "no rows"}  # as before the file: the table's own rules
            else:
                allowed = {"denied"}
            assert outcome in allowed, (role, sql, outcome)
    after = {t: rows(world, f"select * from {t}") for t in before}
    assert after == before
    granted = world.execute(
        "select r, v, p from unnest(array['anon', 'authenticated']) r, unnest(%s::text[]) v, "
        "unnest(array['insert', 'update', 'delete', 'truncate']) p "
        "where has_table_privilege(r, v, p)",
        (list(VIEWS),),
    ).fetchall()
    assert granted == []


def test_security_barrier_keeps_a_leaky_filter_off_other_users_rows(world):
    """A condition the client adds cannot see rows the view's filter drops: a function
    that reports every value it is given only ever sees alice's. The plan is made to
    read whole tables (hash joins, as on a large history): without the barrier the
    planner runs the cheap condition in the scan of tracks, on bob's track too."""
    world.execute(
        "create function leak(text) returns boolean language plpgsql cost 0.0000001 as "
        "$$ begin raise notice 'saw %', $1; return true; end $$"
    )
    seen: list[str] = []
    world.add_notice_handler(lambda d: seen.append(d.message_primary or ""))
    with api(world, "authenticated", A_UUID):
        for setting in ("enable_nestloop", "enable_indexscan", "enable_bitmapscan"):
            world.execute(f"set local {setting} = off")
        for view, column in (("my_plays", "track"), ("my_plays", "spotify_user_id"),
                             ("my_plays", "artists"),
                             ("my_listening_daily", "spotify_user_id"),
                             ("my_listening_heatmap", "spotify_user_id"),
                             ("my_listening_entities_by_day", "spotify_user_id"),
                             ("my_top_tracks", "track"), ("my_spoken_plays", "name"),
                             ("my_spoken_plays", "show"),
                             ("my_spoken_plays", "spotify_user_id")):  # fmt: skip
            world.execute(f"select * from {view} where leak({column}::text)").fetchall()
    alices = {"alice", "Song 1", "Song 2", "Song 3", "Rhea", "Oslo", "Ep 1", "Chapter 3",
              "Tech Talk", "Dune"}  # fmt: skip
    assert set(seen) == {f"saw {value}" for value in alices}


def test_a_page_of_plays_looks_up_the_artists_of_that_page_only(world):
    """The barrier view is planned whole: the artists (a subquery per play) are added
    outside it, so `order by played_at desc limit N` runs the subquery N times, not once
    per play of the history."""
    with api(world, "authenticated", A_UUID):
        (plan,) = world.execute(
            "explain (analyze, format json) select * from my_plays order by played_at desc limit 1"
        ).fetchone()[0]

    def subplans(node: dict) -> list[dict]:
        found = [node] if node.get("Parent Relationship") == "SubPlan" else []
        return found + [s for child in node.get("Plans", []) for s in subplans(child)]

    loops = [s["Actual Loops"] for s in subplans(plan["Plan"])]
    assert loops == [1]  # alice has 4 plays


# -- changes of the links -------------------------------------------------------------
def test_removing_the_link_removes_the_access(world):
    world.execute("delete from app_access.links where spotify_user_id = 'alice'")
    world.execute("delete from auth.users where id = %s", (B_UUID,))  # bob's link goes with it
    assert world.execute("select count(*) from app_access.links").fetchone() == (0,)
    for sub in (A_UUID, B_UUID):
        with api(world, "authenticated", sub):
            for mine in VIEWS:
                assert world.execute(f"select count(*) from {mine}").fetchone() == (0,), mine


def test_a_removed_spotify_user_takes_its_link_along(world):
    world.execute("delete from user_tokens where user_id = 'bob'")
    assert world.execute("select spotify_user_id from app_access.links").fetchall() == [("alice",)]


def test_linking_a_second_spotify_account_shows_both(world):
    link(world, "carol", A_UUID)
    with api(world, "authenticated", A_UUID):
        owners = {r[0] for r in world.execute("select spotify_user_id from my_plays")}
    assert owners == {"alice", "carol"}


# -- the file itself ------------------------------------------------------------------
PRIVILEGES = """
select c.relname || ' ' || coalesce(c.relacl::text, '') from pg_class c
 where c.relnamespace in ('public'::regnamespace, 'app_access'::regnamespace)
union all
select p.oid::regprocedure::text || ' ' || coalesce(p.proacl::text, '') from pg_proc p
 where p.pronamespace = 'app_access'::regnamespace
"""


def test_applying_the_file_again_is_harmless(world):
    with api(world, "authenticated", A_UUID):
        seen = {mine: rows(world, f"select * from {mine}") for mine in VIEWS}
    privileges = rows(world, PRIVILEGES)
    assert schema.apply_optional(world, "app-access") == "optional/app_access.sql"
    assert rows(world, PRIVILEGES) == privileges
    assert world.execute("select count(*) from app_access.links").fetchone() == (2,)
    with api(world, "authenticated", A_UUID):
        assert {mine: rows(world, f"select * from {mine}") for mine in VIEWS} == seen


def test_each_my_view_has_the_columns_of_its_public_view(world):
    """The my_* views copy the public views' columns: a column a repeatable file adds,
    renames or retypes fails here until the opt-in file follows."""
    columns = """select a.attname, format_type(a.atttypid, a.atttypmod) from pg_attribute a
                  where a.attrelid = %s::regclass and a.attnum > 0 order by a.attnum"""
    for mine, public in VIEWS.items():
        got = world.execute(columns, (mine,)).fetchall()
        assert got == world.execute(columns, (public,)).fetchall(), mine


def test_plain_migrate_does_not_apply_it(pg_cluster):
    url = pg_cluster.create(migrated=False)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            supabase(conn, legacy=False)
            schema.migrate(conn)
            assert schema.migrate(conn) == []
            found = conn.execute(
                "select to_regnamespace('app_access'), to_regclass('my_plays'), "
                "(select count(*) from schema_files where name like 'optional/%')"
            ).fetchone()
            assert found == (None, None, 0)
            assert "optional/app_access.sql" not in schema.plan(schema.read_state(conn)).names()
    finally:
        pg_cluster.drop(url)


def test_migrate_with_app_access_applies_and_records_it(run, db_url):
    with psycopg.connect(db_url, autocommit=True) as conn:
        supabase(conn, legacy=False)
    result = run("migrate", "--with", "app-access")
    assert (result.code, result.out) == (0, "applied 1 migration: optional/app_access.sql\n")
    with psycopg.connect(db_url, autocommit=True) as conn:
        recorded = conn.execute(
            "select checksum from schema_files where name = 'optional/app_access.sql'"
        ).fetchone()
        assert recorded == (schema.checksum(schema.SQL_DIR / "optional" / "app_access.sql"),)
        assert conn.execute("select to_regclass('my_top_artists')").fetchone()[0] is not None
    assert run("migrate").out == "schema is up to date\n"  # and plain migrate leaves it be


def test_a_changed_opt_in_file_is_applied_again_where_it_was_opted_in(world, tmp_path):
    sql_dir = tmp_path / "sql"
    shutil.copytree(schema.SQL_DIR, sql_dir)
    assert schema.migrate(world, sql_dir) == []  # opted in, unchanged: nothing to do
    pulled = tmp_path / "pulled"  # a new checkout (checksums are cached by path)
    shutil.copytree(sql_dir, pulled)
    path = pulled / "optional" / "app_access.sql"
    path.write_text(path.read_text() + "\ncomment on view public.my_plays is 'v2';\n")
    assert schema.migrate(world, pulled) == ["optional/app_access.sql"]
    assert world.execute("select obj_description('public.my_plays'::regclass)").fetchone() == (
        "v2",
    )
    assert schema.migrate(world, pulled) == []


def test_migrate_with_an_unknown_name_lists_the_known_ones(run):
    result = run("migrate", "--with", "app-acess")
    assert result.code == 2
    assert result.err.strip().splitlines() == [
        "error: unknown --with 'app-acess': known: app-access"
    ]


def test_migrate_with_app_access_refuses_a_database_without_supabase_auth(run, db_url):
    result = run("migrate", "--with", "app-access")
    assert result.code == 2
    (line,) = result.err.strip().splitlines()
    assert "needs Supabase Auth (auth.users and auth.uid())" in line and "Traceback" not in line
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert conn.execute("select to_regnamespace('app_access')").fetchone() == (None,)


def test_dropping_its_schema_takes_every_view_along(world):
    """docs/app-access.md's way out: one statement, and the public schema is as before
    (user_tokens keeps its revoked grants: nothing needs them back)."""
    world.execute("drop schema app_access cascade")
    left = world.execute(
        "select count(*) from pg_class where relname = any(%s) or relname like 'my\\_%%'",
        (list(VIEWS),),
    ).fetchone()
    assert left == (0,)
    assert world.execute("select count(*) from top_artists").fetchone()[0] > 0
