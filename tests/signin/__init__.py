"""Tests of sync/signin/."""
