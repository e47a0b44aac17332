"""The import's writes (sync/store/imports.py, sql/repeatable/25_import.sql): the stored
plays it fills or replaces, the foreign keys of a bulk load, and a busy table refused in
one line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from sync.errors import UserError
from sync.store import imports as store
from tests.conftest import add_user
from tests.support.pg import round_trips

T0 = datetime(2024, 5, 6, 18, 0, 0, tzinfo=UTC)
KEYS = """select conrelid::regclass::text, conname, pg_get_constraintdef(oid) from pg_constraint
           where contype = 'f'
             and conrelid = any(array['listening_history', 'tracks', 'track_artists']::regclass[])
           order by 1, 2"""


def _plays(conn, key: int) -> list[tuple]:
    return conn.execute(
        "select played_at, ms_played, source from listening_history where user_id = %s order by 1",
        (key,),
    ).fetchall()


def test_a_file_s_tracks_are_resolved_in_two_round_trips_however_many(db_url):
    refs = [(f"spotify:track:t{n:020d}", 0, f"Song {n}", f"Artist {n % 7}", f"Album {n % 3}")
            for n in range(300)] + [
           (f"spotify:export:Artist {n}:Song {n}", 1, f"Song {n}", f"Artist {n}", None)
            for n in range(200)]  # fmt: skip
    with psycopg.connect(db_url, prepare_threshold=None) as conn, conn.transaction():
        conn.execute("select catalogue_import_stage()")
        got: dict[str, int] = {}
        assert round_trips(conn, lambda: got.update(store.resolve_tracks(conn, refs, False))) == 2
        assert sorted(got) == sorted(r[0] for r in refs)
        assert round_trips(conn, lambda: store.resolve_tracks(conn, refs[:1], False)) == 2
        assert conn.execute("select count(*) from tracks").fetchone()[0] == 500


def test_merge_fills_api_plays_and_deletes_replaced_ones(conn):
    key = add_user(conn)
    other = add_user(conn, "bob", "refresh-bob-0001")
    tid = conn.execute("insert into tracks (uri, name) values ('spotify:track:x', 'X') "
                       "returning id").fetchone()[0]  # fmt: skip
    times = [T0 + timedelta(minutes=i) for i in range(3)]
    for user in (key, other):
        for at, source in zip(times, (0, 2, 0), strict=True):
            conn.execute(
                "insert into listening_history (user_id, played_at, track_id, source) "
                "values (%s, %s, %s, %s)",
                (user, at, tid, source),
            )
    with conn.transaction():
        changed = store.merge(conn, key, [(times[0], 123_000)], [times[1]])
    assert sorted(changed) == times[:2]
    assert _plays(conn, key) == [(times[0], 123_000, 0), (times[2], None, 0)]
    assert _plays(conn, other) == [(times[0], None, 0), (times[1], None, 2), (times[2], None, 0)]
    assert store.merge(conn, key, [], []) == []


def test_foreign_keys_suspended_for_a_bulk_load_come_back_the_same(conn):
    before = conn.execute(KEYS).fetchall()
    assert len(before) == 5
    with conn.transaction():
        keys = store.suspend_foreign_keys(conn)
        assert conn.execute(KEYS).fetchall() == []
        store.restore_foreign_keys(conn, keys)
    assert conn.execute(KEYS).fetchall() == before


def test_a_bulk_load_refuses_a_busy_history_in_one_line(db_url, conn, monkeypatch):
    monkeypatch.setattr(store, "LOCK_TIMEOUT", "200ms")
    before = conn.execute(KEYS).fetchall()
    with psycopg.connect(db_url) as holder:
        holder.execute("lock table listening_history in access share mode")  # an open query
        with psycopg.connect(db_url) as importer:
            busy = pytest.raises(UserError, match="listening_history is in use")
            with busy as err, importer.transaction():
                store.suspend_foreign_keys(importer)
            assert "\n" not in str(err.value)
        holder.rollback()
    assert conn.execute(KEYS).fetchall() == before
