"""Tests of sync/config/."""
