"""owner_notices: which GitHub issue stands for which problem (sql/007).

Every change is compare-and-set on the row, so overlapping runs agree on one issue per
problem: a run claims the row (claimed_until) before it calls GitHub and records the
outcome only while its claim holds. Callers run in autocommit: each call here is one
statement, one round trip.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import psycopg

from sync.statuses import SYNCED_STATUSES, Outcome

Key = tuple[str, str]  # (problem, subject)
CLAIM = timedelta(minutes=10)  # longer than the GitHub calls of one row can take


@dataclass(frozen=True)
class Row:
    key: Key
    issue_number: int | None
    body_hash: str | None
    claimed: bool  # another run's claim is in force
    attempts: int


def user_facts(conn: psycopg.Connection, gap_runs: int) -> list[tuple]:
    """Every user a run syncs (not removed, not the demo) with the facts problems are
    decided on (sync.notify.problems.UserFacts): one round trip.
    gap_runs: how many synced runs to count gaps over."""
    rows = conn.execute(
        """select u.id, u.user_id, u.status, u.authorized_at, last.status,
                  coalesce(gaps.n, 0)
             from user_tokens u
             left join lateral (
                   select status from sync_run_users
                    where user_id = u.id and status <> %(skipped)s and started_at is not null
                    order by started_at desc limit 1) last on true
             left join lateral (
                   select count(*) filter (where possible_gap) as n
                     from (select possible_gap from sync_run_users
                            where user_id = u.id and status = %(ok)s
                            order by run_id desc limit %(gap_runs)s) recent) gaps on true
            where u.status = any(%(synced)s)
            order by u.id""",
        {
            "skipped": Outcome.SKIPPED,
            "ok": Outcome.OK,
            "gap_runs": gap_runs,
            "synced": [str(s) for s in SYNCED_STATUSES],
        },
    ).fetchall()
    return rows


def rows(conn: psycopg.Connection) -> dict[Key, Row]:
    found = conn.execute(
        """select problem, subject, issue_number, body_hash,
                  coalesce(claimed_until > now(), false), attempts
             from owner_notices"""
    ).fetchall()
    return {(p, s): Row((p, s), n, h, c, a) for p, s, n, h, c, a in found}


def claim_new(conn: psycopg.Connection, key: Key) -> int | None:
    """Claim the right to open the issue for key; the attempt number, or None if taken."""
    row = conn.execute(
        """insert into owner_notices as o (problem, subject, claimed_until, attempts)
           values (%s, %s, now() + %s, 1)
           on conflict (problem, subject) do update
              set claimed_until = excluded.claimed_until, attempts = o.attempts + 1,
                  updated_at = now()
            where o.issue_number is null
              and (o.claimed_until is null or o.claimed_until <= now())
           returning attempts""",
        (key[0], key[1], CLAIM),
    ).fetchone()
    return row[0] if row else None


def record_issue(conn: psycopg.Connection, key: Key, number: int, body_hash: str) -> bool:
    """The issue now exists: store its number (only while no other run recorded one)."""
    cur = conn.execute(
        """update owner_notices set issue_number = %s, body_hash = %s, claimed_until = null,
                  updated_at = now()
            where problem = %s and subject = %s and issue_number is null""",
        (number, body_hash, key[0], key[1]),
    )
    return cur.rowcount == 1


def release(conn: psycopg.Connection, key: Key) -> None:
    """The GitHub call failed: let the next run try (attempts remembers the try)."""
    conn.execute(
        "update owner_notices set claimed_until = null where problem = %s and subject = %s",
        (key[0], key[1]),
    )


def claim_issue(conn: psycopg.Connection, key: Key, number: int) -> bool:
    """Claim an existing issue for an update or the close; False if another run has it."""
    cur = conn.execute(
        """update owner_notices set claimed_until = now() + %s, updated_at = now()
            where problem = %s and subject = %s and issue_number = %s
              and (claimed_until is null or claimed_until <= now())""",
        (CLAIM, key[0], key[1], number),
    )
    return cur.rowcount == 1


def record_update(conn: psycopg.Connection, key: Key, number: int, body_hash: str) -> None:
    conn.execute(
        """update owner_notices set body_hash = %s, claimed_until = null, updated_at = now()
            where problem = %s and subject = %s and issue_number = %s""",
        (body_hash, key[0], key[1], number),
    )


def forget(conn: psycopg.Connection, key: Key, number: int | None) -> None:
    """The issue was closed (or never made): the problem has no row any more."""
    conn.execute(
        """delete from owner_notices
            where problem = %s and subject = %s and issue_number is not distinct from %s""",
        (key[0], key[1], number),
    )
