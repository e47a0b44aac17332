"""docs/setup-transcript.md is generated: regenerating it gives the same bytes."""

from __future__ import annotations

from tests.tools.setup_transcript import DOC, record


def test_the_setup_transcript_matches_what_setup_prints_today(empty_db_url, tmp_path):
    fresh = record(empty_db_url, tmp_path)
    assert " at None" not in fresh and "applied migration" not in fresh
    rerun = fresh.split("the same command again")[1]
    assert "[y/N]" not in rerun and "[Y/n]" not in rerun  # a re-run with all done asks nothing
    assert fresh == DOC.read_text(), (
        "docs/setup-transcript.md is stale: regenerate it with "
        "python -m tests.tools.setup_transcript > docs/setup-transcript.md"
    )


def test_sign_in_names_a_socket_database_by_its_directory(tmp_path):
    from sync.commands.login import _database_label
    from sync.config import load_settings

    socket_url = "postgresql://postgres@/spotify?host=/run/postgresql&port=5432"
    assert _database_label(load_settings({"DATABASE_URL": socket_url})) == (
        "the database at the socket in /run/postgresql"
    )
    embedded = load_settings({"SYNC_DATA_DIR": str(tmp_path / "data")})
    assert _database_label(embedded).startswith("the embedded database in ")
