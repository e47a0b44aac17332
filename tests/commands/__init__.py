"""Tests of sync/commands/."""
