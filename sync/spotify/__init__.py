"""Talking to Spotify: the Web API client, OAuth pieces and the sign-in listener."""
