"""Tests of sync/setup/."""
