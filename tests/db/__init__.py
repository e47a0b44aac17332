"""Tests of sync/db/."""
