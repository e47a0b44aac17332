"""Run records: sync_runs (one row a run) and sync_run_users (one row a user a run)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import psycopg


def last_attempts(conn: psycopg.Connection) -> dict[int, datetime]:
    """When each user was last actually attempted (skips excluded), by user key."""
    rows = conn.execute(
        "select user_id, max(started_at) from sync_run_users "
        "where status <> 'skipped' and started_at is not null group by user_id"
    ).fetchall()
    return dict(rows)


def start_run(conn: psycopg.Connection, trigger: str, run_url: str | None, dry_run: bool) -> int:
    row = conn.execute(
        "insert into sync_runs (trigger, run_url, dry_run) values (%s, %s, %s) returning id",
        (trigger, run_url, dry_run),
    ).fetchone()
    return row[0]


def finish_run(
    conn: psycopg.Connection,
    run_id: int,
    status: str,
    totals: dict[str, int],
) -> None:
    conn.execute(
        """update sync_runs set finished_at = now(), status = %s, users_total = %s,
                  users_synced = %s, users_failed = %s, users_skipped = %s, tracks_added = %s
            where id = %s""",
        (
            status,
            totals["users_total"],
            totals["users_synced"],
            totals["users_failed"],
            totals["users_skipped"],
            totals["tracks_added"],
            run_id,
        ),
    )


def record_user_result(
    conn: psycopg.Connection,
    run_id: int,
    key: int,
    *,
    status: str,
    started_at: datetime | None,
    fetched: int,
    new_tracks: int,
    skipped_items: int,
    possible_gap: bool,
    error_class: str | None,
    error: str | None,
    warnings: Sequence[str],
) -> None:
    conn.execute(
        """insert into sync_run_users (run_id, user_id, status, started_at, finished_at, fetched,
                  new_tracks, skipped_items, possible_gap, error_class, error, warnings)
           values (%s, %s, %s, %s, now(), %s, %s, %s, %s, %s, %s, %s)
           on conflict (run_id, user_id) do update set status = excluded.status,
                  finished_at = excluded.finished_at, fetched = excluded.fetched,
                  new_tracks = excluded.new_tracks, skipped_items = excluded.skipped_items,
                  possible_gap = excluded.possible_gap, error_class = excluded.error_class,
                  error = excluded.error, warnings = excluded.warnings""",
        (
            run_id, key, status, started_at, fetched, new_tracks, skipped_items,
            possible_gap, error_class, error, list(warnings),
        ),
    )  # fmt: skip
