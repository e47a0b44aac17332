"""`python -m sync run`: sync every stored user once, then report."""

from __future__ import annotations

import argparse
import logging
import sys

from sync import analytics, db
from sync.config import Settings
from sync.errors import UserError
from sync.job.pipeline import Context, Options, fair_order, run_sync
from sync.job.summary import Reporter, json_report, summary_markdown, write_step_summary
from sync.redact import Redactor
from sync.spotify.client import SpotifyClient
from sync.store import runs
from sync.store import users as user_store

log = logging.getLogger(__name__)


def cmd_run(args: argparse.Namespace, settings: Settings, redactor: Redactor) -> int:
    url = db.database_url(settings)
    with db.open_database(settings) as conn:
        users = user_store.load_users(conn, args.user or None)
        missing = sorted(set(args.user) - {u.user_id for u in users})
        if missing:
            raise UserError(
                f"no active user {', '.join(missing)} in user_tokens: check the id "
                "(python -m sync users lists them) or sign in with python -m sync login"
            )
        if any(u.status == "active" for u in users):
            settings.require_spotify_credentials()
        users = fair_order(users, runs.last_attempts(conn))
        options = Options(
            dry_run=args.dry_run,
            max_tracks=args.max_tracks,
            concurrency=args.concurrency,
            time_budget=args.time_budget,
        )
        client = SpotifyClient(
            settings.api_url,
            settings.accounts_url,
            settings.client_id or "",
            settings.client_secret,
            pool_size=args.concurrency,
        )
        reporter = Reporter(
            redactor,
            sys.stderr,
            show_ids=settings.show_user_ids,
            github_actions=settings.in_github_actions,
        )
        run_id = None
        if not args.dry_run:
            run_id = runs.start_run(conn, settings.trigger, settings.run_url, False)
            conn.commit()
        ctx = Context(client=client, redactor=redactor, options=options)
        status = "interrupted"
        try:
            result = run_sync(url, db.connect, users, ctx, run_id=run_id,
                              on_result=reporter.user_done)  # fmt: skip
            status = "failed" if result.exit_code else "ok"
        finally:
            if run_id is not None:
                totals = result.totals() if status != "interrupted" else {
                    k: 0 for k in ("users_total", "users_synced", "users_failed",
                                   "users_skipped", "tracks_added")}  # fmt: skip
                runs.finish_run(conn, run_id, status, totals)
                conn.commit()
        details = ""  # listening details only when the owner opts in (SYNC_SUMMARY_DETAILS)
        if settings.summary_details and settings.step_summary_path:
            details = analytics.summary_section(
                conn, [(u.key, reporter.name(u)) for u in result.users]
            )
    reporter.finish(result)
    if settings.step_summary_path:
        write_step_summary(
            settings.step_summary_path,
            summary_markdown(result, reporter.name, settings.run_url) + details,
            redactor,
        )
    if args.json:
        print(redactor.redact(json_report(result, reporter.name)))
    return result.exit_code
