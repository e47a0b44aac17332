"""System tests: whole runs, the runner's signals, many hours, browsers (slow)."""
