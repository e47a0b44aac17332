"""Persistence only: users and their tokens, plays and the catalogue, run records."""
