"""Tests of sync/analytics/."""
