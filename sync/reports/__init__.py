"""The HTML report: what it shows (data), its charts, and the page."""
