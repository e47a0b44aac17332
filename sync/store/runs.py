"""Run records: sync_runs (one row a run) and sync_run_users (one row a user a run).

A run row says until when its run is alive (`alive_until`, pushed forward as the run
finishes users, at most once a minute: sql/repeatable/60_sync.sql). A run whose time
passed without finishing was killed (SIGKILL, OOM, a lost runner): the next run closes
it as `killed` and says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

from sync.statuses import SYNCED_STATUSES, Outcome, RunStatus

# Rows left running by versions without alive_until: a GitHub job lasts 6 hours at most.
_LEGACY_RUN_LIMIT = timedelta(hours=6)


@dataclass(frozen=True)
class Candidate:
    """A user the run may sync, with what the previous attempts said (for order and reports)."""

    key: int
    user_id: str
    status: str
    last_attempt: datetime | None  # start of the last attempt that was not a skip
    last_outcome: str | None  # outcome of the latest attempt that was not a skip
    last_error_class: str | None
    created_at: datetime


def candidates(conn: psycopg.Connection) -> list[Candidate]:
    """Every user a run syncs (not removed, not the demo), with their last attempt: one
    round trip."""
    rows = conn.execute(
        """select u.id, u.user_id, u.status, r.started_at, r.status, r.error_class, u.created_at
             from user_tokens u
             left join lateral (
                   select started_at, status, error_class from sync_run_users
                    where user_id = u.id and status <> %s and started_at is not null
                    order by started_at desc limit 1) r on true
            where u.status = any(%s)
            order by u.id""",
        (Outcome.SKIPPED, [str(s) for s in SYNCED_STATUSES]),
    ).fetchall()
    return [Candidate(*row) for row in rows]


@dataclass(frozen=True)
class OpenedRun:
    run_id: int
    killed: list[tuple[int, datetime]]  # (id, started_at) of dead runs closed just now


def open_run(
    conn: psycopg.Connection,
    trigger: str,
    run_url: str | None,
    alive_for: timedelta,
) -> OpenedRun:
    """Insert this run's row and close runs that died without finishing: one round trip."""
    row = conn.execute(
        """with killed as (
               update sync_runs set status = %s, finished_at = coalesce(alive_until, now())
                where status = %s
                  and (alive_until < now() or (alive_until is null and started_at < now() - %s))
            returning id, started_at),
           new as (
               insert into sync_runs (trigger, run_url, dry_run, alive_until)
               values (%s, %s, false, now() + %s) returning id)
           select (select id from new),
                  coalesce((select array_agg(array[id::text, started_at::text] order by id)
                              from killed), '{}')""",
        (RunStatus.KILLED, RunStatus.RUNNING, _LEGACY_RUN_LIMIT, trigger, run_url, alive_for),
    ).fetchone()
    killed = [(int(i), datetime.fromisoformat(at)) for i, at in row[1]]
    return OpenedRun(row[0], killed)


def finish_run(
    conn: psycopg.Connection, run_id: int, status: RunStatus, totals: dict[str, int]
) -> None:
    conn.execute(
        """update sync_runs set finished_at = now(), status = %s, alive_until = null,
                  users_total = %s, users_synced = %s, users_failed = %s, users_skipped = %s,
                  tracks_added = %s
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
