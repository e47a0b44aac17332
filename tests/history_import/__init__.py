"""Tests of sync/history_import/."""
