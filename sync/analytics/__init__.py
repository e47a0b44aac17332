"""Listening analytics: upkeep of the aggregates, their reads, and `stats` in the terminal."""
