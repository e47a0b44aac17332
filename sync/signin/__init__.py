"""Signing in to Spotify: the flow on this machine, and links for any device."""
