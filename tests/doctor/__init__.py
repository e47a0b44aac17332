"""Tests of sync/doctor/."""
