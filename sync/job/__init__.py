"""The hourly sync job: tokens, the recently-played window, transform, per-user unit of work."""
