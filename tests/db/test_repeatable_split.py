"""Splitting or renaming a repeatable file leaves no stale function behind.

`migrate` knows files, not functions (sync/db/schema.py): a repeatable file whose checksum
changed is run again, and a new one is run; nothing drops what an older file created. So
a function may move between files (create or replace makes the same definition), but one
that no file creates any more stays on every upgraded database unless a file drops it
(docs/schema.md). These tests hold that for the splits made so far.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import psycopg

from sync.db import schema
from tests.db.test_schema_upgrade import (
    _git,
    apply_like_then,
    catalogue,
    differences,
    fresh_catalogue,  # noqa: F401 (a fixture)
    materialize,
    sql_history,
)

_CREATES = re.compile(r"^create\s+or\s+replace\s+function\s+(\w+)\s*\(", re.I | re.M)

# The file each split moved functions into: the database of the commit before it must
# upgrade to a fresh install.
SPLITS = ["repeatable/31_analytics_rebuild.sql"]


def test_each_function_is_created_by_one_repeatable_file():
    """A moved function is moved, not copied: two copies would make the apply order decide."""
    where: dict[str, list[str]] = {}
    for path in schema.repeatables():
        for name in set(_CREATES.findall(path.read_text())):
            where.setdefault(name.lower(), []).append(path.name)
    assert {name: files for name, files in where.items() if len(files) > 1} == {}
    assert "analytics_rebuild" in where and where["analytics_rebuild"] == [
        "31_analytics_rebuild.sql"
    ]


def test_a_database_from_before_each_split_upgrades_to_a_fresh_install(
    pg_cluster,
    fresh_catalogue,  # noqa: F811
):
    sql_history()  # fails without git history, skips on SYNC_SKIP_HISTORY_TEST=1
    failures = []
    with tempfile.TemporaryDirectory(prefix="shs-sql-split-") as tmp:
        for name in SPLITS:
            added = _git("log", "--diff-filter=A", "--format=%H", "--", f"sql/{name}").split()
            if not added:  # not committed yet: the split is against this checkout's HEAD
                before = _git("rev-parse", "HEAD").strip()
            else:
                before = _git("rev-parse", f"{added[-1]}^").strip()
            sql_dir = materialize(before, Path(tmp) / before)
            assert not (sql_dir / name).exists(), f"{name} already existed at {before[:7]}"
            url = pg_cluster.create(migrated=False)
            try:
                with psycopg.connect(url) as conn:
                    apply_like_then(conn, sql_dir)
                    assert name in schema.migrate(conn)
                found = differences(catalogue(url), fresh_catalogue)
            finally:
                pg_cluster.drop(url)
            if found:
                failures.append(f"before {name} ({before[:7]}):\n  " + "\n  ".join(found))
    assert not failures, "\n\n".join(failures)
