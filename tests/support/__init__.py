"""What the tests share: stand-in servers, fakes, database helpers."""
