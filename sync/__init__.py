"""spotify-history-sync: keep your Spotify listening history in your own Postgres."""

__version__ = "0.1.0"
