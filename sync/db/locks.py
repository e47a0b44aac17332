"""Every advisory lock key the project takes, in one place.

Postgres advisory locks are keyed by integers; keeping them here makes sure no two
jobs pick the same number by accident. The SQL functions in sql/ use USER_ANALYTICS and
CATALOGUE.
"""

from __future__ import annotations

USER_ANALYTICS = 7306  # (USER_ANALYTICS, user key): taken inside sql/ analytics refreshes
CATALOGUE = 7307  # taken inside sql/ catalogue_upsert: one placeholder adoption at a time
MIGRATION = 7_305_001  # one `migrate` at a time
