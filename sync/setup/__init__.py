"""Pieces of `python -m sync setup`: prompts, checks, the .env file, GitHub through `gh`.

The command itself (the order of the steps) is sync/commands/setup.py.
"""
