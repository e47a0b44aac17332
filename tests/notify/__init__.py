"""Tests of sync/notify/."""
