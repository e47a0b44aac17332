"""`sync import`: backfill a user's history from Spotify's personal data export.

The rules (what counts as a play, how export plays meet plays already synced from the
Web API, time collisions, placeholder tracks) are in docs/import.md. The package:

- files.py: find the export's files (zip, folder, files) and parse them in workers;
- parse.py: one file's entries to rows (pure), by format in extended.py and account.py,
  with staged.py (what a file becomes, shared rules) and json_entries.py (the JSON array);
- match.py: pair export plays with stored plays (pure);
- load.py: the Loader, which writes one parsed file after another through
  sync/store/imports.py (the set logic is SQL: sql/repeatable/25_import.sql);
- importer.py: the whole import in ONE transaction (a malformed file anywhere means
  nothing of the import is written); progress.py and report.py: what it shows.
"""
