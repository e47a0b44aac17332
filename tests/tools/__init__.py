"""Scripts that generate docs from the tests' stand-ins (run with python -m)."""
