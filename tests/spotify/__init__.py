"""Tests of sync/spotify/."""
