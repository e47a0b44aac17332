"""`python -m sync export`: a user's whole history out again, as Spotify's extended streaming
history (a zip any importer of Spotify's export reads) or as CSV (the `plays` view's columns).

Reads only. Streams from a server-side cursor into a temporary file beside the target, renamed
at the end, so memory stays flat whatever the history and a failed export leaves nothing
behind. docs/export.md has the formats and rules.
"""

from sync.export.history import FORMATS, ExportResult, export_history

__all__ = ["FORMATS", "ExportResult", "export_history"]
