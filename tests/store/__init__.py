"""Tests of sync/store/."""
