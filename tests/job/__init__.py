"""Tests of sync/job/."""
