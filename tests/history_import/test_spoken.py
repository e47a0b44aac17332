"""Podcast episodes and audiobook chapters from the export, kept apart from music (issue 18,
part 1), against a real Postgres: dedup across files, formats and imports, items known by
URI or by show and name together, music untouched, the storage budget."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg

from sync.history_import.files import find_sources
from sync.history_import.importer import import_export
from sync.history_import.parse import ParseOptions
from tests.conftest import add_user
from tests.support.analytics import rebuilt_snapshot, snapshot
from tests.support.export_fakes import (
    audiobook,
    end_time,
    episode,
    extended,
    podcast,
    write,
)

T0 = datetime(2024, 5, 6, 18, 0, 21, tzinfo=UTC)


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def do_import(db_url, key, *paths, **options):
    sources, _ = find_sources([str(p) for p in paths])
    with psycopg.connect(db_url) as c:
        return import_export(c, key, sources, ParseOptions(**options), workers=1, bulk=False)


def spoken(conn, key=1) -> list[tuple]:
    """(played_at, kind, uri, show, name, ms_played, source) of every spoken play."""
    return conn.execute(
        """select p.played_at, i.kind, i.uri, i.show, i.name, p.ms_played, p.source
             from spoken_plays p join spoken_items i on i.id = p.item_id
            where p.user_id = %s order by 1, 2""",
        (key,),
    ).fetchall()


def counts(result) -> tuple[int, int, int, int]:
    return tuple(result.total(a) for a in ("episodes", "chapters", "spoken_already",
                                           "spoken_replaced"))  # fmt: skip


def chapter(when: datetime, book: str, title: str, ms: int = 600_000) -> dict:
    """An account-data `StreamingHistory_audiobook_*.json` entry."""
    return {"endTime": end_time(when), "audiobookName": book, "chapterName": title,
            "authorName": "Someone", "msPlayed": ms}  # fmt: skip


def show_episode(when: datetime, show: str, name: str, ms: int = 600_000) -> dict:
    return {"endTime": end_time(when), "podcastName": show, "episodeName": name, "msPlayed": ms}


def an_export(tmp_path):
    """Extended history with two episodes and a chapter, and the account data of the
    same plays (minute precision, names only)."""
    ext = write(tmp_path / "ext" / "Streaming_History_Audio_2024_0.json", [
        extended(T0, 1), episode(T0 + minutes(10), 1), episode(T0 + minutes(40), 2),
        audiobook(T0 + minutes(70)),
    ])  # fmt: skip
    acc = tmp_path / "acc"
    write(acc / "StreamingHistory_podcast_0.json", [
        show_episode(T0 + minutes(10), "A Show", "Episode 1"),
        show_episode(T0 + minutes(40), "a show", "EPISODE 2"),  # names compare lower-cased
    ])  # fmt: skip
    write(acc / "StreamingHistory_audiobook_0.json", [chapter(T0 + minutes(70), "A Book",
                                                              "Chapter 1")])  # fmt: skip
    return ext.parent, acc


def test_episodes_and_chapters_are_stored_apart_from_music(db_url, conn, tmp_path):
    key = add_user(conn)
    ext, _ = an_export(tmp_path)
    result = do_import(db_url, key, ext)
    assert result.total("new") == 1  # the song
    assert counts(result) == (2, 1, 0, 0)
    assert spoken(conn, key) == [
        (T0 + minutes(10), 1, f"spotify:episode:ep{1:020d}", "A Show", "Episode 1", 600_000, 1),
        (T0 + minutes(40), 1, f"spotify:episode:ep{2:020d}", "A Show", "Episode 2", 600_000, 1),
        (T0 + minutes(70), 2, "spotify:chapter:chap000000000000000001", "A Book", "Chapter 1",
         600_000, 1),
    ]  # fmt: skip
    assert conn.execute("select count(*) from tracks").fetchone()[0] == 1  # no episode track


def test_the_same_files_twice_add_nothing(db_url, conn, tmp_path):
    key = add_user(conn)
    ext, acc = an_export(tmp_path)
    first = do_import(db_url, key, ext, acc)
    before = spoken(conn, key)
    again = do_import(db_url, key, ext, acc)
    assert counts(again) == (0, 0, 3 + 3, 0)  # both formats' rows: already stored
    assert spoken(conn, key) == before and len(before) == 3
    assert counts(first)[:2] == (2, 1)


def test_extended_and_account_data_of_the_same_plays_add_nothing_in_either_order(
    db_url, conn, tmp_path, pg_cluster
):
    ext, acc = an_export(tmp_path)
    key = add_user(conn)
    do_import(db_url, key, ext)
    after_ext = spoken(conn, key)
    assert counts(do_import(db_url, key, acc)) == (0, 0, 3, 0)
    assert spoken(conn, key) == after_ext

    other = pg_cluster.create()  # account data first: extended replaces its plays
    with psycopg.connect(other, autocommit=True) as c2:
        key2 = add_user(c2)
        first = do_import(other, key2, acc)
        assert counts(first) == (2, 1, 0, 0)
        assert {row[6] for row in spoken(c2, key2)} == {2}
        assert counts(do_import(other, key2, ext)) == (2, 1, 0, 3)
        assert spoken(c2, key2) == after_ext  # exact seconds, URIs adopted: as if ext alone
        assert c2.execute("select count(*) from spoken_items").fetchone()[0] == 3


def test_a_second_play_of_an_item_in_the_same_minute_is_kept(db_url, conn, tmp_path):
    """Account data: the same episode twice in one minute, different listening times, is two
    plays (the second 1 ms later); an extended file with one of them replaces only one."""
    key = add_user(conn)
    acc = write(tmp_path / "a" / "StreamingHistory_podcast_0.json", [
        show_episode(T0, "S", "E", 40_000), show_episode(T0, "S", "E", 50_000),
        show_episode(T0, "S", "E", 50_000),  # the same row again: one play
    ])  # fmt: skip
    result = do_import(db_url, key, acc)
    assert counts(result) == (2, 0, 0, 0) and result.skipped() == {"duplicate": 1}
    minute = T0.replace(second=0)
    assert [r[0] for r in spoken(conn, key)] == [minute, minute + timedelta(milliseconds=1)]
    ext = write(tmp_path / "e" / "Streaming_History_Audio_2024_0.json",
                [episode(T0, 5) | {"episode_show_name": "S", "episode_name": "E"}])  # fmt: skip
    assert counts(do_import(db_url, key, ext)) == (1, 0, 0, 1)
    assert [(r[0], r[6]) for r in spoken(conn, key)] == [
        (minute + timedelta(milliseconds=1), 2), (T0, 1)]  # fmt: skip


def test_an_item_is_its_show_and_name_together_never_its_name_alone(db_url, conn, tmp_path):
    key = add_user(conn)
    write(tmp_path / "StreamingHistory_audiobook_0.json", [
        chapter(T0, "Book One", "Chapter 3"), chapter(T0 + minutes(20), "Book Two", "Chapter 3"),
        chapter(T0 + minutes(40), "BOOK ONE", "chapter 3"),  # the first one again, other case
    ])  # fmt: skip
    write(tmp_path / "StreamingHistory_podcast_0.json", [
        show_episode(T0, "Show One", "Episode 1"), show_episode(T0 + minutes(20), "Show Two",
                                                                "Episode 1"),
    ])  # fmt: skip
    result = do_import(db_url, key, tmp_path)
    assert counts(result) == (2, 3, 0, 0)
    items = conn.execute("select kind, show, name from spoken_items order by 1, 2").fetchall()
    assert items == [(1, "Show One", "Episode 1"), (1, "Show Two", "Episode 1"),
                     (2, "Book One", "Chapter 3"), (2, "Book Two", "Chapter 3")]  # fmt: skip
    plays = conn.execute("select i.show, count(*) from spoken_plays p join spoken_items i "
                         "on i.id = p.item_id group by 1 order by 1").fetchall()  # fmt: skip
    assert plays == [("Book One", 2), ("Book Two", 1), ("Show One", 1), ("Show Two", 1)]


def test_incognito_and_short_episodes_are_skipped_like_music(db_url, conn, tmp_path):
    key = add_user(conn)
    write(tmp_path / "Streaming_History_Audio_2024_0.json", [
        episode(T0, 1) | {"incognito_mode": True}, episode(T0 + minutes(20), 2, ms=29_000),
        audiobook(T0 + minutes(40), ms=10_000), episode(T0 + minutes(60), 3),
    ])  # fmt: skip
    result = do_import(db_url, key, tmp_path)
    assert counts(result) == (1, 0, 0, 0)
    assert result.skipped() == {"incognito": 1, "short": 2}


def test_music_analytics_do_not_move_when_episodes_are_imported(db_url, conn, tmp_path):
    key = add_user(conn)
    music = [extended(T0 + minutes(5 * n), n) for n in range(1, 20)]
    write(tmp_path / "m" / "Streaming_History_Audio_2023_0.json", music)
    do_import(db_url, key, tmp_path / "m")
    before = snapshot(conn, [key])
    history = conn.execute("select count(*), sum(ms_played) from listening_history").fetchone()
    write(tmp_path / "e" / "Streaming_History_Audio_2024_0.json",
          [episode(T0 + minutes(5 * n + 2), n, ms=1_800_000) for n in range(1, 20)])  # fmt: skip
    write(tmp_path / "e" / "StreamingHistory_podcast_0.json", [podcast(T0 + minutes(300))])
    result = do_import(db_url, key, tmp_path / "e")
    assert counts(result)[0] == 20  # stored...
    assert snapshot(conn, [key]) == before  # ...and not one music figure moved
    assert rebuilt_snapshot(conn, [key]) == before  # not even when rebuilt from the history
    assert any(rows for rows in before.values())  # (the snapshot does hold music figures)
    after = conn.execute("select count(*), sum(ms_played) from listening_history").fetchone()
    assert after == history


def test_the_command_prints_counts_never_names_and_says_the_old_flag_is_not_needed(
    run, conn, tmp_path
):
    add_user(conn)
    ext, acc = an_export(tmp_path)
    done = run("import", str(ext), str(acc), "--user", "alice", "--no-progress",
               "--include-podcasts")  # fmt: skip
    assert done.code == 0, done.err
    assert done.out.splitlines()[0].startswith("--include-podcasts is no longer needed")
    assert "podcasts and audiobooks (apart from music): 2 episode plays, 1 chapter play " \
           "stored, 3 already stored" in done.out.splitlines()[-1]  # fmt: skip
    for name in ("A Show", "Episode", "A Book", "Chapter"):
        assert name not in done.out


def test_removing_a_user_removes_their_spoken_plays(db_url, conn, tmp_path):
    key = add_user(conn)
    ext, _ = an_export(tmp_path)
    do_import(db_url, key, ext)
    conn.execute("delete from user_tokens where id = %s", (key,))
    assert conn.execute("select count(*) from spoken_plays").fetchone()[0] == 0


def test_bytes_per_spoken_play_stay_within_the_budget(conn):
    """docs/schema.md, "Budget": 150 bytes per play with its index (measured: 93.1)."""
    key = add_user(conn)
    item = conn.execute("insert into spoken_items (kind, show, name) values (1, 'S', 'E') "
                        "returning id").fetchone()[0]  # fmt: skip
    n = 100_000
    conn.execute(
        """insert into spoken_plays (played_at, user_id, item_id, ms_played, source)
           select timestamptz '2020-01-01' + g * interval '37 minutes', %s, %s, 600000, 1
             from generate_series(1, %s) g""",
        (key, item, n),
    )
    size = conn.execute("select pg_total_relation_size('spoken_plays')").fetchone()[0]
    assert 80 <= size / n <= 150, size / n


def test_stats_and_the_report_show_hours_per_show_apart_from_music(db_url, conn, tmp_path):
    from sync.analytics import terminal
    from sync.reports import data, html
    from sync.store import users as user_store

    key = add_user(conn)
    write(tmp_path / "m" / "Streaming_History_Audio_2024_0.json",
          [extended(T0 + minutes(5 * n), n) for n in range(1, 6)])  # fmt: skip
    do_import(db_url, key, tmp_path / "m")
    user = user_store.resolve_user(conn, "alice")
    now = T0 + timedelta(days=1)
    music_stats = terminal.render_stats(terminal.load_stats(conn, user, "all", "user-1", now))
    music_page = html.render_report(data.load_report(conn, user, "all", "user-1", now=now))
    assert "Podcasts and audiobooks" not in music_stats + music_page

    write(tmp_path / "e" / "StreamingHistory_podcast_0.json", [
        show_episode(T0 + minutes(60), "Long Show", "One", 3_600_000),
        show_episode(T0 + minutes(120), "Long Show", "Two", 1_800_000),
        show_episode(T0 + minutes(180), "Short <Show>", "One", 900_000),
    ])  # fmt: skip
    write(tmp_path / "e" / "StreamingHistory_audiobook_0.json",
          [chapter(T0 + minutes(240), "A Book", "Chapter 1", 2_700_000)])  # fmt: skip
    do_import(db_url, key, tmp_path / "e")

    s = terminal.load_stats(conn, user, "all", "user-1", now)
    assert (s.spoken.plays, s.spoken.listening_ms, s.spoken.shows) == (4, 9_000_000, 3)
    assert s.spoken.top == [("podcast", "Long Show", 2, 5_400_000),
                            ("audiobook", "A Book", 1, 2_700_000),
                            ("podcast", "Short <Show>", 1, 900_000)]  # fmt: skip
    out = terminal.render_stats(s)
    music, spoken = out.split("\nPodcasts and audiobooks")
    assert music == music_stats  # the music figures, unchanged
    assert "4 plays · 2.5 h · 3 shows and books" in spoken
    assert "Long Show (podcast)" in spoken and "1.5 h" in spoken

    page = html.render_report(data.load_report(conn, user, "all", "user-1", now=now))
    section = page[page.index('<section id="podcasts">'):page.index("</section>", page.index(
        '<section id="podcasts">')) + len("</section>\n")]  # fmt: skip
    assert page.replace(section, "") == music_page  # the music page, byte for byte
    assert 'data-figure="spoken-ms" data-value="9000000"' in section
    assert "<bdi>Long Show</bdi>" in section and "1.5 h" in section
    assert "Short &lt;Show&gt;" in section  # names escaped

    week = terminal.load_stats(conn, user, "7d", "user-1", now + timedelta(days=30))
    assert week.spoken.plays == 0  # the period bounds apply
