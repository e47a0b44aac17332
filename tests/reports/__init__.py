"""Tests of sync/reports/."""
