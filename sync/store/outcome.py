"""One user's outcome of a run, written in one round trip: the one place that knows its shape.

Plays not stored yet (with their catalogue rows and analytics), the user's row in
sync_run_users, the run's alive_until and the release of the run's claim on the user
all happen in sql/repeatable/60_sync.sql's sync_store_user, in one statement and so
in one transaction. The database is usually across a network: round trips count.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import psycopg
from psycopg.types.json import Jsonb

from sync.store.plays import track_json
from sync.store.rows import Play
from sync.store.sources import MATCH_TOLERANCE_MS
from sync.store.users import LEASE


def save(
    conn: psycopg.Connection,
    key: int,
    holder: int,
    run_id: int | None,
    result: dict,
    plays: Sequence[Play] = (),
    alive_for: timedelta = LEASE,
) -> list[datetime]:
    """Write the user's outcome; return the played_at of each play that was new.

    `result` holds the sync_run_users columns (status, started_at, fetched,
    skipped_items, possible_gap, error_class, error, warnings); nothing is recorded
    when run_id is None (a dry run), but the claim is released all the same.
    """
    tracks = {p.track.uri: p.track for p in plays}
    rows = conn.execute(
        "select * from sync_store_user(%s, %s, %s, %s::timestamptz[], %s::text[], %s, %s, %s, %s)",
        (
            key,
            holder,
            run_id,
            [p.played_at for p in plays],
            [p.track.uri for p in plays],
            Jsonb([track_json(t) for t in tracks.values()]),
            Jsonb(result),
            alive_for,
            MATCH_TOLERANCE_MS,
        ),
    ).fetchall()
    return [r[0] for r in rows]
