"""Command handlers: one module per command (group); each parses nothing and wires work."""
